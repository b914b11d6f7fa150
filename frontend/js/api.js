// The one way pages call the HTTP API: JSON in and out, cookies sent, errors as ApiError.

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `The server answered ${status}.`);
    this.status = status;
    this.code = error.code || "http.error";
    this.fields = error.fields || [];
  }
}

export async function api(path, options = {}) {
  return (await apiPage(path, options)).data;
}

// Like `api`, with the URL of the next page when the answer names one (`Link: <…>; rel="next"`).
export async function apiPage(path, { method = "GET", body, keepalive = false } = {}) {
  const init = { method, credentials: "same-origin", keepalive, headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, { error: { code: "network", message: "Dais cannot be reached. Check your connection and try again." } });
  }
  if (response.status === 204) return { data: null, next: null };
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, data);
  const link = /<([^>]+)>;\s*rel="next"/.exec(response.headers.get("Link") || "");
  return { data, next: link ? link[1] : null };
}

// Who this browser is signed in as: {organiser, participant, roles} or null.
export async function whoAmI() {
  try {
    return await api("/api/auth/me");
  } catch (error) {
    if (error.status === 401) return null;
    throw error;
  }
}

// Show an ApiError on a form: a summary at the top, each named field marked invalid.
export function showFormError(form, error) {
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  for (const el of form.querySelectorAll(".field-error")) el.remove();
  let summary = form.querySelector(".form-error");
  if (!error) {
    if (summary) summary.remove();
    return;
  }
  if (!summary) {
    summary = document.createElement("p");
    summary.className = "form-error";
    summary.setAttribute("role", "alert");
    summary.tabIndex = -1;
    form.prepend(summary);
  }
  summary.textContent = error.message;
  for (const { field, message } of error.fields || []) {
    const input = form.elements.namedItem(field.split(".")[0]);
    if (!input || !input.setAttribute) continue;
    input.setAttribute("aria-invalid", "true");
    const note = document.createElement("span");
    note.className = "field-error";
    note.id = `${input.id || field}-error`;
    note.textContent = message;
    input.setAttribute("aria-describedby", note.id);
    input.insertAdjacentElement("afterend", note);
  }
  summary.focus();
}
