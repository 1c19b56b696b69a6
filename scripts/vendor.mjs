// Copy the npm-installed htmx files into static/vendor/ (served by Django; no CDN).
import { copyFileSync, mkdirSync } from "node:fs";

const files = [
  ["node_modules/htmx.org/dist/htmx.min.js", "static/vendor/htmx.min.js"],
  // htmx-ext-ws 2.x ships only ws.js at the package root (its "main" field is wrong).
  ["node_modules/htmx-ext-ws/ws.js", "static/vendor/htmx-ext-ws.js"],
];
mkdirSync("static/vendor", { recursive: true });
for (const [from, to] of files) {
  copyFileSync(from, to);
  console.log(`vendored ${from} -> ${to}`);
}
