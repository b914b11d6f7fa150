// Pages with nothing of their own to load still get the exit control.
import { installExit } from "./exit.js";

installExit();
