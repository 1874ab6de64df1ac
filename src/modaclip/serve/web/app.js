// The search page: text, product and image searches against /api, filters from /api/facets; a product
// opened (clicked) or added is reported to /api/events with the search_id of the page that showed it.
"use strict";

const PAGE = 24;
const state = { mode: null, query: "", product: null, file: null, offset: 0 };
const $ = (id) => document.getElementById(id);
const SESSION = sessionToken();

// A random token per browser tab, sent with each search so the search log can tell shoppers apart;
// it says nothing about the shopper and ends with the tab.
function sessionToken() {
  const fresh = () => [...crypto.getRandomValues(new Uint8Array(12))].map((b) => b.toString(16).padStart(2, "0")).join("");
  try {
    const token = sessionStorage.getItem("modaclip-session") || fresh();
    sessionStorage.setItem("modaclip-session", token);
    return token;
  } catch {
    return fresh();  // storage blocked: one token for this page's life
  }
}

// Fire and forget: a lost event must never get in the shopper's way.
function report(searchId, productId, event) {
  fetch("/api/events", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ search_id: searchId, product_id: productId, event }),
    keepalive: true,
  }).catch(() => {});
}

async function api(url, options) {
  const response = await fetch(url, options);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

async function loadFacets() {
  const { facets } = await api("/api/facets");
  const box = $("filters");
  for (const facet of facets) {
    const label = element("label", "", facet.name);
    if (facet.values) {
      const select = element("select");
      select.name = facet.name;
      select.append(new Option("any", ""));
      for (const { value, count } of facet.values) select.append(new Option(`${value} (${count})`, value));
      select.addEventListener("change", () => rerun());
      label.append(select);
    } else {
      const range = element("span", "range");
      for (const bound of ["min", "max"]) {
        const input = element("input");
        Object.assign(input, { type: "number", name: facet.name, placeholder: `${bound} ${facet[bound]}` });
        input.dataset.bound = bound;
        input.addEventListener("change", () => rerun());
        range.append(input);
      }
      label.append(range);
    }
    box.append(label);
  }
}

function filterParams() {
  const params = new URLSearchParams();
  for (const select of document.querySelectorAll("#filters select")) {
    if (select.value) params.append(select.name, select.value);
  }
  const ranges = {};
  for (const input of document.querySelectorAll("#filters input[data-bound]")) {
    ranges[input.name] = ranges[input.name] || { min: "", max: "" };
    ranges[input.name][input.dataset.bound] = input.value;
  }
  for (const [name, { min, max }] of Object.entries(ranges)) {
    if (min || max) params.append(name, `${min}..${max}`);
  }
  return params;
}

function request(offset) {
  const params = filterParams();
  params.set("k", PAGE);
  params.set("offset", offset);
  params.set("session", SESSION);
  if (state.mode === "text") {
    params.set("q", state.query);
    if ($("hybrid").checked) params.set("hybrid", "true");
    return [`/api/search?${params}`, {}];
  }
  if (state.mode === "product") return [`/api/similar/${state.product.id}?${params}`, {}];
  const form = new FormData();
  form.append("image", state.file);
  return [`/api/similar?${params}`, { method: "POST", body: form }];
}

function heading() {
  const box = $("heading");
  box.replaceChildren();
  if (state.mode === "text") box.append(element("span", "", `Results for “${state.query}”`));
  if (state.mode === "product") {
    const img = element("img");
    Object.assign(img, { src: state.product.image_url, alt: "" });
    box.append(img, element("span", "", `Similar to ${state.product.name} (${state.product.id})`));
  }
  if (state.mode === "image") box.append(element("span", "", `Products that look like ${state.file.name}`));
}

function card(hit, searchId) {
  const node = element("article", "card");
  node.tabIndex = 0;
  node.dataset.id = hit.id;
  const img = element("img");
  Object.assign(img, { src: hit.image_url, alt: hit.name, loading: "lazy", width: 150, height: 150 });
  const details = [hit.attributes.gender, hit.attributes.baseColour, hit.attributes.articleType].filter(Boolean).join(" · ");
  const add = element("button", "add", "Add to bag");
  add.type = "button";
  add.addEventListener("click", (event) => {
    event.stopPropagation();
    report(searchId, hit.id, "add");
    Object.assign(add, { textContent: "Added", disabled: true });
  });
  node.append(img, element("div", "name", hit.name), element("div", "meta", `score ${hit.score.toFixed(3)} · ${details}`), add);
  const open = () => {
    report(searchId, hit.id, "open");
    searchSimilar(hit);
  };
  node.addEventListener("click", open);
  node.addEventListener("keydown", (event) => { if (event.key === "Enter" && event.target === node) open(); });
  return node;
}

async function run(append) {
  if (!state.mode) return;
  const offset = append ? state.offset : 0;
  const [url, options] = request(offset);
  $("more").hidden = true;
  if (!append) heading();
  document.body.classList.add("loading");
  try {
    const page = await api(url, options);
    const cards = page.results.map((hit) => card(hit, page.search_id));
    if (append) $("results").append(...cards);
    else $("results").replaceChildren(...cards);
    if (!append && !cards.length) $("heading").append(element("span", "error", " — no products match"));
    state.offset = page.next_offset ?? 0;
    $("more").hidden = page.next_offset === null;
  } catch (error) {
    if (!append) $("results").replaceChildren();
    $("heading").replaceChildren(element("span", "error", error.message));
  } finally {
    document.body.classList.remove("loading");
  }
}

function rerun() { run(false); }

function searchSimilar(hit) {
  Object.assign(state, { mode: "product", product: hit });
  window.scrollTo({ top: 0 });
  rerun();
}

function searchImage(file) {
  if (!file) return;
  Object.assign(state, { mode: "image", file });
  rerun();
}

function setUp() {
  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const query = $("q").value.trim();
    if (!query) return;
    Object.assign(state, { mode: "text", query });
    rerun();
  });
  $("hybrid").addEventListener("change", () => { if (state.mode === "text") rerun(); });
  $("more").addEventListener("click", () => run(true));
  $("image-file").addEventListener("change", (event) => searchImage(event.target.files[0]));
  document.addEventListener("dragover", (event) => { event.preventDefault(); document.body.classList.add("dragging"); });
  document.addEventListener("dragleave", (event) => { if (!event.relatedTarget) document.body.classList.remove("dragging"); });
  document.addEventListener("drop", (event) => {
    event.preventDefault();
    document.body.classList.remove("dragging");
    searchImage(event.dataTransfer.files[0]);
  });
  if (window.matchMedia("(max-width: 480px)").matches) $("filter-box").open = false;  // phones: results first
  loadFacets().catch((error) => $("heading").replaceChildren(element("span", "error", error.message)));
  showHealth();
  setInterval(showHealth, 30000);  // a server that follows production swaps versions while the page is open
}

function showHealth() {
  api("/health").then((health) => {
    const since = health.since ? ` since ${new Date(health.since).toLocaleString()}` : "";
    const checked = health.follow && health.follow.last_check
      ? ` · registry checked ${new Date(health.follow.last_check).toLocaleTimeString()}` : "";
    const degraded = health.status === "degraded" ? ` · degraded: ${health.problem}` : "";
    $("model").textContent =
      `${health.model}${since} · ${health.catalog_size} products · ${health.index} index${checked}${degraded}`;
    $("model").classList.toggle("error", health.status === "degraded");
  });
}

setUp();
