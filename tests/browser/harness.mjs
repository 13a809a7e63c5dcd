// What every browser script here shares: its spec (the JSON file named by its one argument),
// `check`, which fails the script with a reason, and Debian's headless chromium (offline, in a
// fresh profile, with the flags this machine's closed network needs) on one page whose errors
// are collected. The script exits 1 with the reason on the first failed check.

import { createRequire } from "node:module";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const spec = JSON.parse(readFileSync(process.argv[2], "utf8"));

export function check(ok, what) {
  if (!ok) throw new Error(what);
}

/** Runs `body({ page, errors })` in chromium, then closes it and removes its profile. */
export async function inChromium(body) {
  const require = createRequire(join(spec.node_modules, "package.json"));
  const { chromium } = require("playwright-core");
  const profile = mkdtempSync(join(tmpdir(), "memtrace-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: spec.chromium,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    viewport: { width: 1280, height: 900 },
    offline: true,
  });
  let failed = null;
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    page.on("requestfailed", (r) => errors.push(`request failed: ${r.url()}`));
    await body({ page, errors });
  } catch (e) {
    failed = e;
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
  if (failed) {
    console.error(`browser check failed: ${failed.message ?? failed}`);
    process.exit(1);
  }
}
