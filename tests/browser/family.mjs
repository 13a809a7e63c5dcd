// Drives Debian's chromium (headless) over the interactive page of a family (`memtrace
// flamegraph` of a `--follow-fork` capture): the page loads with no error; the chart stacks
// each process's heap (one series per process, named in the legend); the peak view's total is
// the combined peak `stats` reports, each process the outermost frame of its stacks; choosing
// one process in the process filter shows its frames alone (and only its series), survives a
// reload from the URL fragment; clicking the chart at the combined peak shows every child's
// frames. A screenshot per step (NAME-STEP.png). Exits 1 with the reason on the first failure.
//
//   node family.mjs SPEC.json
//
// SPEC: {report, shots: directory, name, node_modules, chromium, combined_peak: bytes,
// processes: [labels of the processes holding memory at the combined peak], pick: the
// label of the process to choose, pick_frame: a frame of that process's work}.

import { check, inChromium, spec } from "./harness.mjs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const count = (n) => String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ",");

await inChromium(async ({ page, errors }) => {
  const shots = [];
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
  check(errors.length === 0, `page errors: ${errors.join("; ")}`);

  const facts = await page.locator("dl.facts dt").allInnerTexts();
  for (const f of ["Combined peak", "Processes", "At the combined peak"]) {
    check(facts.includes(f), `no ${f} in the summary: ${facts}`);
  }
  const peakFact = page.locator("dl.facts div", { hasText: "Combined peak" }).first().locator("dd");
  check((await peakFact.getAttribute("title")) === `${count(spec.combined_peak)} bytes`,
    `the combined peak fact is ${await peakFact.getAttribute("title")}, stats says ${spec.combined_peak}`);

  // The chart: one stacked series per process, named.
  const series = async () => await page.locator("#chart path.stack title").allTextContents();
  const legend = async () => await page.locator("#legend .key").allTextContents();
  for (const p of spec.processes) {
    check((await series()).some((t) => t.startsWith(p + ": up to")), `no series of ${p} in the chart: ${await series()}`);
    check((await legend()).includes(p), `no ${p} in the legend: ${await legend()}`);
  }
  const drawn = await page.locator("#chart path.stack").evaluateAll((ps) => ps.map((p) => p.getAttribute("d").length));
  check(drawn.length >= spec.processes.length && drawn.every((n) => n > 0), `series not drawn: ${drawn}`);

  // The peak view: the combined peak's total, each process its outermost frame.
  const what = page.locator("#what");
  check((await what.textContent()).startsWith("Live at the combined peak"), `the view reads ${await what.textContent()}`);
  check((await what.getAttribute("title")) === `${count(spec.combined_peak)} bytes`,
    `the peak view holds ${await what.getAttribute("title")}, stats' combined peak is ${spec.combined_peak}`);
  const visible = page.locator("#frames > g:not(.hide)");
  const titles = async () => await visible.locator("title").allTextContents();
  const processFrames = async () => (await titles()).filter((t) => /^pid \d+: /.test(t)).map((t) => t.replace(/ \(.*$/, ""));
  for (const p of spec.processes) {
    check((await processFrames()).includes(p), `no frame of ${p}: ${await processFrames()}`);
  }
  // A process frame is the outermost: nothing drawn below it.
  const rows = await visible.locator("rect").evaluateAll((rs) => rs.map((r) => r.getBoundingClientRect().y));
  const bottom = Math.max(...rows);
  for (const p of spec.processes) {
    const g = visible.filter({ has: page.locator("title", { hasText: new RegExp("^" + p.replace(/[.*+?^${}()|[\]\\]/g, "\\$&") + " \\(") }) }).first();
    const y = (await g.locator("rect").boundingBox()).y;
    check(Math.abs(y - bottom) < 1, `${p} is not the outermost frame (${y} vs ${bottom})`);
  }

  // One process alone.
  const pick = await page.locator("#process option").evaluateAll((os, label) =>
    os.find((o) => o.textContent === label)?.value, spec.pick);
  check(pick !== undefined, `no ${spec.pick} in the process filter`);
  await page.locator("#process").selectOption(pick);
  const alone = await processFrames();
  check(alone.length === 1 && alone[0] === spec.pick, `with ${spec.pick} chosen, the process frames are ${alone}`);
  check((await titles()).some((t) => t.startsWith(spec.pick_frame + " (")), `no ${spec.pick_frame} in ${spec.pick}`);
  const only = await series();
  check(only.length === 1 && only[0].startsWith(spec.pick + ": "), `with ${spec.pick} chosen, the chart shows ${only}`);
  check((await page.evaluate(() => location.hash)).includes(`process=${pick}`), "the process is not in the URL");
  await shot("process");
  await page.reload({ waitUntil: "load" });
  await page.locator("#frames > g").first().waitFor({ state: "attached" });
  check((await page.locator("#process").inputValue()) === pick, "the process choice did not survive a reload");
  const again = await processFrames();
  check(again.length === 1 && again[0] === spec.pick, `after a reload the process frames are ${again}`);
  await page.locator("#process").selectOption("all");

  // A click on the chart at the combined peak: the moment holds every child's memory.
  const peakDot = await page.locator("#chart circle.peak").boundingBox();
  await page.mouse.click(peakDot.x + peakDot.width / 2, peakDot.y + peakDot.height / 2 + 20);
  check((await what.textContent()).startsWith("Live at "), `a click shows ${await what.textContent()}`);
  const moment = +(await what.getAttribute("title")).replace(/[^\d]/g, "");
  check(moment > spec.combined_peak * 0.9, `the moment of the combined peak holds ${moment} bytes`);
  for (const p of spec.processes) {
    check((await processFrames()).includes(p), `no frame of ${p} at the moment: ${await processFrames()}`);
  }
  check((await page.evaluate(() => location.hash)).includes("view=moment"), "the moment is not in the URL");
  await shot("moment");
  check(errors.length === 0, `page errors: ${errors.join("; ")}`);
  console.log(`ok: ${shots.length} screenshots: ${shots.join(" ")}`);
});
