// The demo property portal. Everything goes through the backend-for-frontend (/bff): the
// session cookie is HttpOnly and holds the sealed tokens, so this script never sees a
// token. Unsafe requests carry the CSRF token from /bff/session in X-CSRF-Token.
//
// Two views, chosen by what the session's token may do: a tenant (their own tenancy and
// requests) and staff, i.e. a token with property:read (a manager's portfolio: properties,
// tenants and their balances, open requests; a new request asks which tenant it is for).
"use strict";

let csrf = null;
let staff = false;
// Staff view: tenant id -> {name, property, unit}, for labelling requests.
let tenantsById = new Map();

// Requests still needing work.
const OPEN_STATUSES = ["open", "in_progress", "on_hold"];

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

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) {
    td.className = className;
  }
  return td;
}

function renderRequests(items) {
  const list = $("requests");
  list.replaceChildren();
  if (items.length === 0) {
    const li = document.createElement("li");
    li.textContent = staff ? "No open requests." : "No requests yet.";
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
    status.textContent = r.status.replace("_", " ");
    li.append(title, " ", status, " — " + r.priority + " priority");
    const tenant = tenantsById.get(r.tenant_id);
    if (staff && tenant) {
      li.append(" — for " + tenant.name + " (" + tenant.property + ", unit " + tenant.unit + ")");
    }
    list.append(li);
  }
}

async function loadRequests() {
  const res = await bff("/bff/api/maintenance?sort=-id&limit=50");
  const page = await res.json();
  const items = staff ? page.items.filter((r) => OPEN_STATUSES.includes(r.status)) : page.items;
  renderRequests(items);
}

async function loadTenantView() {
  const tenants = await (await bff("/bff/api/tenants")).json();
  const me = tenants.items[0];
  if (!me) {
    $("tenancy").textContent = "Your account is not linked to a tenancy.";
    $("balance").textContent = "—";
  } else {
    $("tenant-name").textContent = me.name;
    $("tenant-unit").textContent = me.unit;
    const balance = await (await bff("/bff/api/tenants/" + me.id + "/balance")).json();
    $("balance").textContent = balance.currency + " " + balance.balance;
  }
  show("tenant-view", true);
}

async function loadStaffView(scopes) {
  const properties = (await (await bff("/bff/api/properties?limit=100")).json()).items;
  const names = new Map(properties.map((p) => [p.id, p.name]));
  const propertyRows = $("properties").tBodies[0];
  propertyRows.replaceChildren();
  for (const p of properties) {
    const tr = document.createElement("tr");
    tr.append(cell(p.name), cell(p.address), cell(String(p.units), "num"));
    propertyRows.append(tr);
  }

  const tenants = (await (await bff("/bff/api/tenants?limit=100")).json()).items;
  const tenantRows = $("tenants").tBodies[0];
  tenantRows.replaceChildren();
  const choice = $("new-tenant");
  choice.replaceChildren();
  const prompt = document.createElement("option");
  prompt.value = "";
  prompt.textContent = "Choose a tenant…";
  choice.append(prompt);
  tenantsById = new Map();
  for (const t of tenants) {
    const property = names.get(t.property_id) || "property " + t.property_id;
    tenantsById.set(t.id, { name: t.name, property: property, unit: t.unit });
    let balance = "—";
    if (scopes.includes("financial:read")) {
      const b = await (await bff("/bff/api/tenants/" + t.id + "/balance")).json();
      balance = b.currency + " " + b.balance;
    }
    const tr = document.createElement("tr");
    tr.dataset.id = t.id;
    tr.append(cell(t.name), cell(property), cell(t.unit), cell(balance, "num"));
    tenantRows.append(tr);
    const option = document.createElement("option");
    option.value = String(t.id);
    option.textContent = t.name + " — " + property + ", unit " + t.unit;
    choice.append(option);
  }
  choice.required = true;
  show("tenant-choice", true);
  $("requests-title").textContent = "Open maintenance requests";
  show("staff-view", true);
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

  const scopes = (session.scope || "").split(" ");
  staff = scopes.includes("property:read");
  if (staff) {
    await loadStaffView(scopes);
  } else {
    await loadTenantView();
  }
  await loadRequests();
  $("status").textContent = "Up to date.";
}

async function submitRequest(event) {
  event.preventDefault();
  show("form-error", false);
  const request = {
    title: $("new-title").value,
    description: $("new-description").value,
    priority: $("new-priority").value,
  };
  if (staff) {
    // Staff open requests on a tenant's behalf: say which tenant (and so which property).
    const tenant = Number($("new-tenant").value);
    if (!tenant) {
      $("form-error").textContent = "Choose the tenant the request is for.";
      show("form-error", true);
      return;
    }
    request.tenant_id = tenant;
  }
  const res = await bff("/bff/api/maintenance", {
    method: "POST",
    json: request,
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
