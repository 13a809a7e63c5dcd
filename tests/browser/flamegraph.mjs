// Drives Debian's chromium (headless) over a page written by `memtrace flamegraph`: the page
// loads from a file URL, the facts, the chart and the table are shown, the flamegraph (inferno's
// SVG in an iframe's srcdoc) draws a frame for each expected name, hovering a frame shows its
// text, clicking one zooms to it (it then spans the whole width, and a frame beside it is
// hidden). Full-page screenshots are saved before and after the zoom. Exits 1 with the reason
// on the first check that fails.
//
//   node flamegraph.mjs SPEC.json
//
// SPEC: {report, screenshot, zoomed_screenshot, names: [frame names], zoom: name to click, beside: a name hidden
// by that zoom, hover: text the hover shows for the zoomed frame, node_modules: where
// `npm ci` installed playwright-core, chromium: the executable}.

import { check, inChromium, spec } from "./harness.mjs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

await inChromium(async ({ page, errors }) => {
  await page.goto(pathToFileURL(spec.report).href, { waitUntil: "load" });
  await page.frameLocator("iframe#flamegraph").locator("#frames").waitFor();
  await page.waitForTimeout(100);
  // The page as it first shows (saved before any check, to see what went wrong).
  await page.screenshot({ path: spec.screenshot, fullPage: true });

  // The page: facts, the chart, the table.
  check((await page.locator("h1").innerText()).startsWith("memtrace: "), "no heading");
  check((await page.locator("dl.facts dt").count()) >= 4, "no facts");
  const chart = await page.locator("#timeline svg").boundingBox();
  check(chart && chart.width > 500 && chart.height > 200, `chart not drawn: ${JSON.stringify(chart)}`);
  const rows = await page.locator("table tbody tr").count();
  check(rows > 0, "the table has no rows");

  // The flamegraph: its iframe is laid out and its SVG drawn, with its script run.
  const box = await page.locator("iframe#flamegraph").boundingBox();
  check(box && box.width > 800 && box.height > 100, `flamegraph frame too small: ${JSON.stringify(box)}`);
  const frame = page.frameLocator("iframe#flamegraph");
  await frame.locator("#frames").waitFor();
  const details = frame.locator("#details");
  check((await details.count()) === 1, "inferno's details line is missing");

  // A drawn frame of each name: its rect has a width, its label shows (the start of) the name.
  const frameOf = (name) =>
    frame.locator("#frames > g").filter({
      has: frame.locator("title", { hasText: new RegExp("^" + escapeRegExp(name + " (")) }),
    });
  const widthOf = async (name) => (await frameOf(name).first().locator("rect").boundingBox())?.width ?? 0;
  const full = (await frame.locator("#frames").boundingBox())?.width ?? 0;
  // The picture fills the frame's width, and its height (no scroll bar inside the frame).
  check(full > box.width - 40, `the frames are ${full}px wide in a ${box.width}px frame`);
  const svgBox = await frame.locator("svg").first().boundingBox();
  check(svgBox && Math.abs(svgBox.height - box.height) < 10, `the picture is ${svgBox?.height}px high in a ${box.height}px frame`);
  for (const name of spec.names) {
    check((await frameOf(name).count()) >= 1, `no frame named ${name}`);
    const w = await widthOf(name);
    check(w > 20, `frame ${name} is ${w}px wide`);
    const label = (await frameOf(name).first().locator("text").textContent()).trim();
    // Cut at the right when too long: the function's name shows.
    check(label.length >= 3 && name.startsWith(label.replace(/\.\.$/, "")), `frame ${name} labelled "${label}"`);
  }

  // Hover: the details line shows the frame's text.
  // The frame's group: its label lies over its rect, and belongs to the group.
  const target = frameOf(spec.zoom).first();
  await target.hover();
  const hovered = await details.textContent();
  check(hovered.includes(spec.hover), `hover shows "${hovered}", not "${spec.hover}"`);

  // Click to zoom: the frame then spans the whole width, the frame beside it is hidden, and
  // the "Reset Zoom" button shows.
  const before = await widthOf(spec.zoom);
  check(before < full * 0.9, `${spec.zoom} already spans ${before} of ${full}px`);
  await target.click();
  await page.waitForTimeout(200);
  const after = await widthOf(spec.zoom);
  check(Math.abs(after - full) < 2, `after the click ${spec.zoom} is ${after}px of ${full}px`);
  check(await frameOf(spec.beside).first().evaluate((g) => g.classList.contains("hide")),
    `${spec.beside} is not hidden by the zoom`);
  check(await frameOf(spec.beside).first().locator("rect").isHidden(), `${spec.beside} still shows`);
  check(await frame.locator("#unzoom").evaluate((b) => !b.classList.contains("hide")), "no Reset Zoom");

  await page.screenshot({ path: spec.zoomed_screenshot, fullPage: true });
  check(errors.length === 0, `page errors: ${errors.join("; ")}`);
  console.log(`ok: ${spec.names.length} frames, zoomed to ${spec.zoom}, screenshots ${spec.screenshot}, ${spec.zoomed_screenshot}`);
});

/** `s` matched literally in a regular expression. */
function escapeRegExp(s) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
