"""What a person may be called (SECURITY 26): the one rule every stored display name passes, and
the look-alike key that tells whether one name would pass for another on screen."""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

MAX_LENGTH = 80

EMPTY = "Enter a display name."
INVISIBLE = "Display names cannot contain invisible or direction-changing characters."
NOTHING_VISIBLE = "Display names need at least one letter, number or symbol."

# Control (Cc), format (Cf: bidi controls U+061C, U+200E/F, U+202A-202E, U+2066-2069, zero-width
# characters, BOM, soft hyphen, tags), private use (Co), surrogates (Cs), unassigned (Cn), line and
# paragraph separators (Zl, Zp): none of them draws anything a reader can see, and several reorder
# or hide the text around them.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Co", "Cs", "Cn", "Zl", "Zp"})

# Filed by Unicode as letters, marks or symbols, yet drawn as nothing: Hangul fillers, the
# combining grapheme joiner, Khmer inherent vowels, the blank Braille pattern.
_BLANK = frozenset({0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x2800, 0x3164, 0xFFA0})

# Variation selectors are invisible. Only the emoji and text presentation selectors (U+FE0E,
# U+FE0F) are kept, because phones add U+FE0F to emoji such as "❤️", and only right after a
# symbol or a keycap's base ("#️⃣"), never after a letter; the others (VS1-14, ideographic
# VS17-256, Mongolian free variation selectors) are refused.
_PRESENTATION_SELECTORS = frozenset({0xFE0E, 0xFE0F})
_KEYCAP_BASES = frozenset("0123456789#*")
_VARIATION_SELECTORS = frozenset(
    [*range(0xFE00, 0xFE10), *range(0xE0100, 0xE01F0), *range(0x180B, 0x180E), 0x180F]
)

# Python's Unicode database lags Unicode (14.0 in Python 3.11), so an emoji newer than that is
# "unassigned" here; code points in the emoji blocks are allowed, since whatever is assigned there
# is a pictograph, never a control.
_EMOJI_BLOCKS = range(0x1F000, 0x1FB00)


class NameRefused(ValueError):
    """A display name that cannot be stored; `message` says why, for the person typing it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# Zero-width non-joiner and joiner are part of how some names are spelt: ZWNJ keeps letters apart
# in Persian ("مهدی‌زاده"), both shape Indic conjuncts, and ZWJ makes one emoji of several
# ("👩‍💻"). They are kept between two letters of a script other than Latin, Greek or Cyrillic,
# or between two pictographs; anywhere else (between Latin letters, at either end) they only hide
# a difference, and are refused.
_JOINERS = frozenset({0x200C, 0x200D})
_JOINED_SCRIPTS_FROM = 0x0590  # Hebrew onwards: past Latin, Greek, Cyrillic and Armenian


def _joins(previous: str, following: str) -> bool:
    def letter(char: str) -> bool:
        return (
            bool(char)
            and ord(char) >= _JOINED_SCRIPTS_FROM
            and unicodedata.category(char)[0] in "LM"
            and not 0x1D00 <= ord(char) < 0x2000  # phonetic and Latin/Greek extended letters
        )

    def pictograph(char: str) -> bool:
        return bool(char) and (
            unicodedata.category(char) in ("So", "Sk")
            or ord(char) in _EMOJI_BLOCKS
            or ord(char) in _PRESENTATION_SELECTORS
        )

    return (letter(previous) and letter(following)) or (
        pictograph(previous) and pictograph(following)
    )


def _refused(char: str, previous: str, following: str = "") -> bool:
    point = ord(char)
    if point in _JOINERS:
        return not _joins(previous, following)
    if point in _PRESENTATION_SELECTORS:
        return not previous or not (
            previous in _KEYCAP_BASES or unicodedata.category(previous) == "So"
        )
    if point in _VARIATION_SELECTORS or point in _BLANK:
        return True
    category = unicodedata.category(char)
    if category == "Cn" and point in _EMOJI_BLOCKS:
        return False
    return category in _REFUSED_CATEGORIES


def normalise_name(value: str, *, max_length: int = MAX_LENGTH) -> str:
    """The name as stored: NFKC, trimmed, runs of whitespace made one space; else `NameRefused`.

    NFKC turns compatibility forms into what they look like ("Ｒｏｂｉｎ" becomes "Robin", no-break
    and ideographic spaces become spaces) and composes accents, so one name has one spelling.
    Leading and trailing whitespace (a pasted newline) is trimmed; inside a name, anything but a
    space-like separator is refused rather than silently dropped, so what is stored is what was
    typed. The length limit applies to the result, since NFKC can lengthen a name.
    """
    name = unicodedata.normalize("NFKC", value).strip()
    if not name:
        raise NameRefused(EMPTY)
    for i, char in enumerate(name):
        previous = name[i - 1] if i else ""
        following = name[i + 1] if i + 1 < len(name) else ""
        if _refused(char, previous, following):
            raise NameRefused(INVISIBLE)
    # Only space separators are left (Zs: NFKC made most of them U+0020); tabs and newlines
    # inside the name were refused above as controls.
    name = " ".join(name.split())
    if not any(unicodedata.category(char)[0] in "LNSP" for char in name):
        raise NameRefused(NOTHING_VISIBLE)
    if len(name) > max_length:
        raise NameRefused(f"Display names can be at most {max_length} characters.")
    return name


def _display_name(value: str) -> str:
    try:
        return normalise_name(value)
    except NameRefused as refused:
        # A custom error keeps the message exactly as written (no "Value error, " prefix) in
        # the 422 body that app.main builds from validation errors.
        raise PydanticCustomError("display_name", refused.message) from None


# Every schema that takes a display name uses this type. The raw length bound is checked first
# (it keeps NFKC's work small and is what the OpenAPI schema shows), the normalised name again.
DisplayName = Annotated[
    str, Field(min_length=1, max_length=MAX_LENGTH), AfterValidator(_display_name)
]


# -- telling names apart ---------------------------------------------------------------------------

# Letters from other scripts (and digits) that look like a Latin letter, after case folding. Not
# Unicode's whole confusables table (TR39), but the look-alikes that spell Latin names convincingly.
_LOOKALIKES = str.maketrans(
    {
        # Cyrillic
        "а": "a", "в": "b", "е": "e", "ѕ": "s", "і": "l", "ј": "j", "к": "k", "м": "m", "н": "h",
        "о": "o", "п": "n", "р": "p", "с": "c", "т": "t", "у": "y", "х": "x", "һ": "h", "ԁ": "d",
        "ԛ": "q", "ԝ": "w", "ӏ": "l", "ү": "y", "ѵ": "v",
        # Greek
        "α": "a", "β": "b", "ε": "e", "ζ": "z", "η": "n", "ι": "l", "κ": "k", "μ": "m", "ν": "v",
        "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x",
        # Latin variants, digits and strokes
        "ı": "l", "ɑ": "a", "ɡ": "g", "i": "l", "1": "l", "|": "l", "0": "o",
    }
)  # fmt: skip
_LOOKALIKE_PAIRS = (("rn", "m"), ("vv", "w"), ("cl", "d"))

# Titles and letters after a name: "Jess Phillips" would pass for "Jess Phillips MP".
_TITLES = frozenset(
    "dr prof professor mr mrs ms miss mx sir dame lord lady rev revd mp msp mep qc kc "
    "obe mbe cbe phd md".split()
)

_WORD = re.compile(r"[^\W_]+")  # letters and digits of any script


def name_words(name: str) -> tuple[str, ...]:
    """The words of a name as a reader's eye takes them: case, accents, spacing, punctuation and
    look-alike letters from other scripts make no difference; titles are left out."""
    folded = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", name).casefold())
    bare = "".join(c for c in folded if unicodedata.category(c)[0] != "M")
    words = []
    for word in _WORD.findall(bare.translate(_LOOKALIKES)):
        for pair, single in _LOOKALIKE_PAIRS:
            word = word.replace(pair, single)
        words.append(word)
    untitled = tuple(w for w in words if w not in _TITLES)
    # A name made only of emoji has no words; compare it as it is.
    return untitled or tuple(words) or (bare,)


def passes_for(name: str, *others: str) -> bool:
    """Whether `name` would pass for any of `others`: the same words however written, run
    together or apart, or all of one's words (two or more) in order inside it ("Saskia Garner
    (chair)")."""
    mine = name_words(name)
    joined = "".join(mine)
    for other in others:
        theirs = name_words(other)
        if joined == "".join(theirs):
            return True
        span = len(theirs)
        if span >= 2 and any(mine[i : i + span] == theirs for i in range(len(mine) - span + 1)):
            return True
    return False
