// Drives Debian's chromium (headless) over the pages of two captures made under a cgroup v2
// memory limit: the page embeds the limit (meta.memory_limit), the summary names it, and the
// chart draws it as a dashed horizontal line labelled with it, across the plot at the limit's
// height (the limit above the heap: the top of the scale, less its 8% margin). A limit more than
// 4 times the highest value is only named at the top of the chart, without a line. A screenshot
// per page (NAME-STEP.png). Exits 1 with the reason on the first failure.
//
//   node limit.mjs SPEC.json
//
// SPEC: {on_scale: report, above: report, limit_on_scale: bytes, limit_above: bytes,
// label_on_scale, label_above: the labels the chart must show, shots: directory, name,
// node_modules, chromium}.

import { check, inChromium, spec } from "./harness.mjs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

await inChromium(async ({ page, errors }) => {
  const shots = [];
  for (const [step, report, limit, label, drawn] of [
    ["on-scale", spec.on_scale, spec.limit_on_scale, spec.label_on_scale, true],
    ["above", spec.above, spec.limit_above, spec.label_above, false],
  ]) {
    await page.goto(pathToFileURL(report).href, { waitUntil: "load" });
    await page.locator("#chart path.curve").waitFor({ state: "attached" });
    const path = join(spec.shots, `${spec.name}-${step}.png`);
    await page.screenshot({ path, fullPage: true });
    shots.push(path);
    check(errors.length === 0, `${step}: page errors: ${errors.join("; ")}`);
    const data = JSON.parse(await page.locator("#memtrace-data").textContent());
    check(data.meta.memory_limit === limit, `${step}: embedded limit ${data.meta.memory_limit}, not ${limit}`);
    const facts = await page.locator("dl.facts div").allInnerTexts();
    check(facts.some((f) => f.startsWith("Memory limit") && f.includes("(cgroup v2 memory.max)")),
      `${step}: no memory limit in the summary: ${facts}`);
    const text = page.locator("#chart text.limit");
    check((await text.count()) === 1, `${step}: ${await text.count()} limit labels`);
    check((await text.textContent()) === label, `${step}: the label is "${await text.textContent()}"`);
    const lines = page.locator("#chart line.limit");
    if (!drawn) {
      check((await lines.count()) === 0, `${step}: a limit line off the scale`);
      continue;
    }
    check((await lines.count()) === 1, `${step}: ${await lines.count()} limit lines`);
    const a = await lines.evaluate((l) => ["x1", "x2", "y1", "y2"].map((k) => +l.getAttribute(k)));
    const [x1, x2, y1, y2] = a;
    // The plot spans x 70..990, y 12 (top) .. 230 (zero); the scale's top is 1.08 x the limit.
    check(x1 === 70 && x2 === 990, `${step}: the line spans ${x1}..${x2}`);
    const want = 230 - 218 / 1.08;
    check(y1 === y2 && Math.abs(y1 - want) < 0.01, `${step}: the line is at y ${y1}, ${y2}, not ${want}`);
    const box = await lines.boundingBox();
    check(box && box.width > 500, `${step}: the line is not shown: ${JSON.stringify(box)}`);
    const title = await lines.locator("title").textContent();
    check(title.startsWith(label), `${step}: the line's title is "${title}"`);
  }
  console.log(`ok: ${shots.length} screenshots: ${shots.join(" ")}`);
});
