// Drives Debian's chromium (headless) over the interactive page of `memtrace flamegraph` as a
// user would: the page loads from a file URL with no error, the summary, chart and table show,
// the flamegraph draws the expected frames, hovering shows a frame's bytes and source line,
// clicking zooms. With `phases` in the spec (a two-phase script): dragging over each phase on
// the chart shows that phase's line and not the other's, clicking the chart shows the heap at
// that moment, the view survives a reload from its URL fragment; threads, import frames,
// inversion and the table's sort are toggled and checked. A full-page screenshot is saved at
// each step (NAME-STEP.png). Exits 1 with the reason on the first check that fails.
//
//   node interactive.mjs SPEC.json
//
// SPEC: {report, shots: directory, name, names: [frame names], zoom, beside, hover,
// node_modules, chromium, phases?: {one, two, worker, source_one, module, evil}, types?: {type,
// line, objects}: a type live at the peak and at exit, its first line and its object count}.

import { check, inChromium, spec } from "./harness.mjs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

function escapeRegExp(s) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

await inChromium(async ({ page, errors }) => {
  const shots = [];
  page.on("dialog", (d) => { errors.push(`a dialog opened: ${d.message()}`); d.dismiss(); });
  const url = pathToFileURL(spec.report).href;
  await page.goto(url, { waitUntil: "load" });
  await page.locator("#frames > g").first().waitFor({ state: "attached" });
  const shot = async (step) => {
    const path = join(spec.shots, `${spec.name}-${step}.png`);
    await page.waitForTimeout(50);
    await page.screenshot({ path, fullPage: true });
    shots.push(path);
  };
  await shot("page");

  // The page: heading, summary strip, chart, table.
  check((await page.locator("h1").innerText()).startsWith("memtrace: "), "no heading");
  const facts = await page.locator("dl.facts dt").allInnerTexts();
  for (const f of ["Peak", "Total allocated", "Allocations", "Duration", "Command", "Python", "Mode"]) {
    check(facts.includes(f), `no ${f} in the summary: ${facts}`);
  }
  // Human units, the exact bytes on hover.
  const peakFact = page.locator("dl.facts div", { hasText: "Peak" }).locator("dd");
  check(/^\d+(\.\d)? (B|KiB|MiB|GiB) at /.test(await peakFact.textContent()), `the peak reads ${await peakFact.textContent()}`);
  check(/^[\d,]+ bytes$/.test(await peakFact.getAttribute("title")), "no exact bytes on the peak's hover");
  const chart = await page.locator("#timeline svg").boundingBox();
  check(chart && chart.width > 500 && chart.height > 100, `chart not drawn: ${JSON.stringify(chart)}`);
  check((await page.locator("table#locations tbody tr").count()) > 0, "the table has no rows");

  // The flamegraph.
  const visible = page.locator("#frames > g:not(.hide)");
  const frameOf = (name) =>
    visible.filter({ has: page.locator("title", { hasText: new RegExp("^" + escapeRegExp(name + " (")) }) });
  const anyFrame = (name) => page.locator("#frames > g").filter({
    has: page.locator("title", { hasText: new RegExp("^" + escapeRegExp(name + " (")) }),
  });
  const shows = async (name) => (await frameOf(name).count()) > 0;
  const widthOf = async (name) => (await frameOf(name).first().locator("rect").boundingBox())?.width ?? 0;
  const box = await page.locator("svg#flamegraph").boundingBox();
  check(box && box.width > 800 && box.height > 30, `flamegraph too small: ${JSON.stringify(box)}`);
  const full = (await page.locator("#frames").boundingBox())?.width ?? 0;
  check(full > box.width - 40, `the frames are ${full}px wide in a ${box.width}px picture`);
  for (const name of spec.names) {
    check(await shows(name), `no frame named ${name}`);
    const w = await widthOf(name);
    check(w > 20, `frame ${name} is ${w}px wide`);
    const label = (await frameOf(name).first().locator("text").textContent()).trim();
    check(label.length >= 3 && name.startsWith(label.replace(/\.\.$/, "")), `frame ${name} labelled "${label}"`);
  }
  const details = page.locator("#details");
  const target = frameOf(spec.zoom).first();
  await target.hover();
  const hovered = await details.textContent();
  check(hovered.includes(spec.hover), `hover shows "${hovered}", not "${spec.hover}"`);
  const before = await widthOf(spec.zoom);
  check(before < full * 0.9, `${spec.zoom} already spans ${before} of ${full}px`);
  await target.click();
  const after = await widthOf(spec.zoom);
  check(Math.abs(after - full) < 2, `after the click ${spec.zoom} is ${after}px of ${full}px`);
  check(await anyFrame(spec.beside).first().evaluate((g) => g.classList.contains("hide")),
    `${spec.beside} is not hidden by the zoom`);
  check(await anyFrame(spec.beside).first().locator("rect").isHidden(), `${spec.beside} still shows`);
  check(await page.locator("#unzoom").evaluate((b) => !b.classList.contains("hide")), "no Reset zoom");
  check((await page.evaluate(() => location.hash)).includes("zoom="), "the zoom is not in the URL");
  await shot("zoomed");
  await page.locator("#unzoom").click();
  check(!(await page.evaluate(() => location.hash)).includes("zoom="), "the zoom stays in the URL");

  // A --native capture: the interpreter's frames are hidden, then shown on demand. Hidden:
  // the outermost Python frame is a root (nothing of the interpreter's start above it) and the
  // inner Python frame sits right on the outer one (no evaluation loop between them).
  if (spec.native) {
    const n = spec.native;
    const titles = async () => await visible.locator("title").allTextContents();
    const rectOf = async (name) => await frameOf(name).first().locator("rect").boundingBox();
    const rows = async () => {
      const outer = await rectOf(n.outer), inner = await rectOf(n.inner);
      const bottom = Math.max(...(await visible.locator("rect").evaluateAll((rs) => rs.map((r) => r.getBoundingClientRect().y))));
      return { gap: Math.round((outer.y - inner.y) / 16), root: Math.abs(outer.y - bottom) < 1 };
    };
    const hidden = await rows();
    check(hidden.gap === 1 && hidden.root, `hidden interpreter frames: ${n.inner} is ${hidden.gap} rows over ${n.outer}, which is a root: ${hidden.root}`);
    check((await titles()).some((t) => t.startsWith(n.below + " ")), `no ${n.below} under the Python frames`);
    await page.locator("#interp").uncheck();
    const shown = await rows();
    check(shown.gap > 1 && !shown.root, `shown interpreter frames: ${n.inner} is ${shown.gap} rows over ${n.outer}, a root: ${shown.root}`);
    check((await titles()).some((t) => t.startsWith(n.between + " ")), `no ${n.between} frame once the interpreter's frames show`);
    check((await page.evaluate(() => location.hash)).includes("interpreter=show"), "the interpreter toggle is not in the URL");
    await shot("native");
    await page.locator("#interp").check();
  }

  const p = spec.phases;
  if (p) {
    // The chart's bars: each bucket's high-water mark. Phase two's plateau is the highest,
    // phase one's the longest run between half and 80% of it.
    const bars = await page.locator("#chart rect.bar").evaluateAll((rs) =>
      rs.map((r) => ({ h: +r.getAttribute("height"), ...(() => { const b = r.getBoundingClientRect(); return { x: b.x, w: b.width, y: b.y }; })() })));
    check(bars.length > 20, `${bars.length} bars on the chart`);
    const maxH = Math.max(...bars.map((b) => b.h));
    const run = (ok) => {
      let best = [0, -1], start = -1;
      bars.forEach((b, i) => {
        if (ok(b.h)) { if (start < 0) start = i; if (i - start > best[1] - best[0]) best = [start, i]; } else start = -1;
      });
      return best;
    };
    const two = run((h) => h > 0.9 * maxH);
    const one = run((h) => h > 0.45 * maxH && h < 0.8 * maxH && true);
    check(one[1] - one[0] >= 5 && two[1] - two[0] >= 5 && one[1] < two[0],
      `no two plateaus on the chart: one ${one}, two ${two} of ${bars.length} bars`);
    const mid = (i) => bars[i].x + bars[i].w / 2;
    const y = chart.y + chart.height / 2;
    const drag = async (x0, x1) => {
      await page.mouse.move(x0, y);
      await page.mouse.down();
      await page.mouse.move((x0 + x1) / 2, y, { steps: 4 });
      await page.mouse.move(x1, y, { steps: 4 });
      await page.mouse.up();
    };
    // Phase one: from the script's start to the middle of its plateau.
    await drag(bars[0].x + 1, mid(Math.floor((one[0] + one[1]) / 2)));
    check((await page.evaluate(() => location.hash)).includes("view=range"), "the range is not in the URL");
    check(await shows(p.one), `phase one's range does not show ${p.one}`);
    check(!(await shows(p.two)), `phase one's range shows ${p.two}`);
    check((await page.locator("#what").textContent()).startsWith("Allocated from "), "no range in the heading");
    await shot("range-one");
    // Phase two: from the end of phase one's plateau to the middle of its own.
    await drag(mid(one[1] + 1), mid(Math.floor((two[0] + two[1]) / 2)));
    check(await shows(p.two), `phase two's range does not show ${p.two}`);
    check(!(await shows(p.one)), `phase two's range shows ${p.one}`);
    await shot("range-two");
    // The view comes back from its URL.
    const shared = await page.evaluate(() => location.href);
    await page.goto("about:blank");
    await page.goto(shared, { waitUntil: "load" });
    await page.locator("#frames > g").first().waitFor({ state: "attached" });
    check(await shows(p.two) && !(await shows(p.one)), "the shared range does not show phase two alone");

    // Click a moment in phase one: the heap then.
    await page.mouse.click(mid(Math.floor((one[0] + one[1]) / 2)), y);
    check((await page.evaluate(() => location.hash)).includes("view=moment"), "the moment is not in the URL");
    check(await shows(p.one) && !(await shows(p.two)), "the moment in phase one does not show phase one alone");
    check(await shows(p.module), `the moment in phase one does not show the import's ${p.module}`);
    await frameOf(p.one).first().hover();
    check((await details.textContent()).includes(p.source_one), `the hover does not show the source line ${p.source_one}`);
    await shot("moment");

    // Threads: the worker thread's frame shows in its own thread only.
    await page.mouse.click(mid(Math.floor((two[0] + two[1]) / 2)), y);
    check(await shows(p.two) && await shows(p.worker), "the moment in phase two misses its frames");
    const options = await page.locator("#threads option").evaluateAll((os) => os.map((o) => o.value));
    let worker = null, main = null;
    for (const v of options.filter((v) => /^\d+$/.test(v))) {
      await page.selectOption("#threads", v);
      const w = await shows(p.worker), t = await shows(p.two);
      if (w && !t) worker = v;
      if (t && !w) main = v;
    }
    check(worker !== null && main !== null, `no thread shows ${p.worker} alone and another ${p.two} alone`);
    await page.selectOption("#threads", "each");
    const tops = await visible.locator("title").allTextContents();
    check(tops.filter((t) => t.startsWith("thread ")).length >= 2, "each thread apart: no two thread frames");
    check((await page.evaluate(() => location.hash)).includes("threads=each"), "the threads are not in the URL");
    await shot("threads");
    await page.selectOption("#threads", "all");

    // The import machinery: hidden by default, shown on demand.
    await page.locator("#views button[data-view=peak]").click();
    const frozen = async () => (await visible.locator("title").allTextContents()).some((t) => t.includes(" at <frozen importlib"));
    check(!(await frozen()), "import machinery shows while hidden");
    check(await shows(p.module), `the peak does not show ${p.module}`);
    await page.locator("#imports").uncheck();
    check(await frozen(), "no import machinery frame once shown");
    check((await page.evaluate(() => location.hash)).includes("imports=show"), "the import toggle is not in the URL");
    await shot("imports");
    await page.locator("#imports").check();

    // <unknown>: every allocation includes some made with no frame (a thread that runs no
    // Python code); its hover says what it is, and a toggle hides it.
    await page.locator("#views button[data-view=all]").click();
    check(await shows("<unknown>"), "no <unknown> in every allocation");
    await frameOf("<unknown>").first().hover();
    check((await details.textContent()).includes("no frame recorded"), "the hover does not explain <unknown>");
    await page.locator("#unknown").check();
    check(!(await shows("<unknown>")), "<unknown> shows while hidden");
    check((await page.evaluate(() => location.hash)).includes("unknown=hide"), "the <unknown> toggle is not in the URL");
    await page.locator("#unknown").uncheck();
    await page.locator("#views button[data-view=peak]").click();

    // A name with markup in it stays text.
    check(await shows(p.evil), `no frame named ${p.evil}`);
    check((await page.locator("img, b, iframe").count()) === 0, "markup from a name became an element");
    check((await page.locator("script").count()) === 2, "a script element came from a name");
    // The table: the function and its file:line, each as text.
    for (const part of p.evil.split(" at ")) {
      const cells = await page.locator("table#locations td.loc").allTextContents();
      check(cells.includes(part), `the table does not show ${part} as text`);
    }

    // Inverted: the outermost frame on top.
    const yOf = async (name) => (await frameOf(name).first().locator("rect").boundingBox()).y;
    const flameOrder = (await yOf(p.outer)) > (await yOf(p.two));
    await page.locator("#inverted").check();
    const icicleOrder = (await yOf(p.outer)) < (await yOf(p.two));
    check(flameOrder && icicleOrder, `inversion: outer below (${flameOrder}) then above (${icicleOrder})`);
    check((await page.evaluate(() => location.hash)).includes("inverted=1"), "inversion is not in the URL");
    await shot("inverted");
    await page.locator("#inverted").uncheck();

    // The table sorts by a column, both ways.
    const counts = async () => (await page.locator("table#locations tbody tr td:nth-child(4)").allTextContents())
      .map((t) => +t.replace(/,/g, ""));
    await page.locator("th[data-key=count]").click();
    const down = await counts();
    check(down.length > 2 && down.every((v, i) => i === 0 || down[i - 1] >= v), `not by allocations, most first: ${down}`);
    await shot("sorted");
    await page.locator("th[data-key=count]").click();
    const up = await counts();
    check(up.every((v, i) => i === 0 || up[i - 1] <= v), `not by allocations, fewest first: ${up}`);
    check((await page.evaluate(() => location.hash)).includes("sort=count-asc"), "the sort is not in the URL");
    await page.locator("th[data-key=own]").click();
  }
  if (spec.types) {
    // By type: each moment's types; a type expands to the lines that allocated its objects.
    const t = spec.types;
    for (const moment of ["peak", "exit"]) {
      const part = page.locator(`#types-${moment}`);
      check(await part.isVisible(), `no types live at the ${moment}`);
      const group = part.locator("details.type", { has: page.locator("span.tname", { hasText: new RegExp(`^${escapeRegExp(t.type)}$`) }) });
      check((await group.count()) === 1, `no ${t.type} at the ${moment}`);
      const head = await group.locator("summary").innerText();
      check(head.includes(`${t.objects} objects`), `${t.type} at the ${moment}: ${head}`);
      check(!(await group.locator("table").isVisible()), `${t.type}'s lines show before it is opened`);
      await group.locator("summary").click();
      const rows = await group.locator("tbody tr").allInnerTexts();
      check(rows.length >= 1 && rows[0].includes(t.line) && rows[0].includes(t.objects),
        `${t.type}'s first line at the ${moment}: ${rows}`);
    }
    check((await page.locator("#types-covered").innerText()).includes("peak and exit"), "the coverage is not said");
    await page.locator("#by-type").scrollIntoViewIfNeeded();
    await shot("types");
  }
  check(errors.length === 0, `page errors: ${errors.join("; ")}`);
  console.log(`ok: ${shots.length} screenshots: ${shots.join(" ")}`);
});
