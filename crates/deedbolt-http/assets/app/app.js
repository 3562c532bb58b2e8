// The demo tenant portal. Everything goes through the backend-for-frontend (/bff): the
// session cookie is HttpOnly and holds the sealed tokens, so this script never sees a
// token. Unsafe requests carry the CSRF token from /bff/session in X-CSRF-Token.
"use strict";

let csrf = null;

function $(id) {
  return document.getElementById(id);
}

function show(id, visible) {
  $(id).hidden = !visible;
}

async function bff(path, options = {}) {
  const init = { credentials: "same-origin", headers: {}, ...options };
  if (init.method && init.method !== "GET") {
    init.headers["X-CSRF-Token"] = csrf;
  }
  if (init.json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(init.json);
    delete init.json;
  }
  const res = await fetch(path, init);
  if (res.status === 401) {
    signedOut();
    throw new Error("signed out");
  }
  return res;
}

function signedOut() {
  csrf = null;
  show("signed-in", false);
  show("signed-out", true);
  $("status").textContent = "Signed out.";
}

function renderRequests(items) {
  const list = $("requests");
  list.replaceChildren();
  if (items.length === 0) {
    const li = document.createElement("li");
    li.textContent = "No requests yet.";
    list.append(li);
    return;
  }
  for (const r of items) {
    const li = document.createElement("li");
    li.dataset.id = r.id;
    const title = document.createElement("strong");
    title.textContent = r.title;
    const status = document.createElement("span");
    status.className = "status";
    status.textContent = r.status;
    li.append(title, " ", status, " — " + r.priority + " priority");
    list.append(li);
  }
}

async function loadRequests() {
  const res = await bff("/bff/api/maintenance?sort=-id&limit=50");
  const page = await res.json();
  renderRequests(page.items);
}

async function load() {
  const session = await (await fetch("/bff/session", { credentials: "same-origin" })).json();
  if (!session.authenticated) {
    signedOut();
    return;
  }
  csrf = session.csrf_token;
  $("who").textContent = session.name || session.sub;
  show("signed-out", false);
  show("signed-in", true);

  const tenants = await (await bff("/bff/api/tenants")).json();
  const me = tenants.items[0];
  if (!me) {
    $("tenancy").textContent = "Your account is not linked to a tenancy.";
  } else {
    $("tenant-name").textContent = me.name;
    $("tenant-unit").textContent = me.unit;
    const balance = await (await bff("/bff/api/tenants/" + me.id + "/balance")).json();
    $("balance").textContent = balance.currency + " " + balance.balance;
  }
  await loadRequests();
  $("status").textContent = "Up to date.";
}

async function submitRequest(event) {
  event.preventDefault();
  show("form-error", false);
  const res = await bff("/bff/api/maintenance", {
    method: "POST",
    json: {
      title: $("new-title").value,
      description: $("new-description").value,
      priority: $("new-priority").value,
    },
  });
  if (res.status !== 201) {
    const body = await res.json().catch(() => ({}));
    const fields = (body.fields || []).map((f) => f.field + " " + f.message).join("; ");
    $("form-error").textContent = "Not sent: " + (fields || body.error_description || res.status);
    show("form-error", true);
    return;
  }
  $("new-request").reset();
  await loadRequests();
  $("status").textContent = "Request sent.";
}

async function signOut() {
  await fetch("/bff/logout", {
    method: "POST",
    credentials: "same-origin",
    headers: { "X-CSRF-Token": csrf },
  });
  signedOut();
}

document.addEventListener("DOMContentLoaded", () => {
  $("new-request").addEventListener("submit", (e) => {
    submitRequest(e).catch((err) => {
      $("status").textContent = "Error: " + err.message;
    });
  });
  $("signout").addEventListener("click", () => {
    signOut().catch((err) => {
      $("status").textContent = "Error: " + err.message;
    });
  });
  load().catch((err) => {
    $("status").textContent = "Error: " + err.message;
  });
});
