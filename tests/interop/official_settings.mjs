#!/usr/bin/env node
// The settings the official Python client has no option for (seed, presence penalty), sent
// by the OFFICIAL JavaScript client (@lmstudio/sdk, pinned in package.json) as raw KV
// fields, a prediction seed against a load seed, log probabilities and a stop string, on
// the real SmolLM2 (tests/interop/test_interop_settings.py runs it).
//
//   node tests/interop/official_settings.mjs --base-url ws://127.0.0.1:PORT --llm KEY
//
// Prints one JSON line on stdout: {"ok", "results", "sdkLog", "failure"?}. Everything else
// goes to stderr. Each call is bounded by --timeout seconds.

import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    "base-url": { type: "string" },
    llm: { type: "string" },
    timeout: { type: "string", default: "180" },
  },
});
const seconds = Number(values.timeout);
const summary = { client: "@lmstudio/sdk", ok: false, sdkLog: [], results: {} };
const logger = {
  debug: (...args) => console.error("[sdk debug]", ...args),
  info: (...args) => console.error("[sdk info]", ...args),
  warn: (...args) => summary.sdkLog.push({ level: "warn", message: args.map(String).join(" ") }),
  error: (...args) => summary.sdkLog.push({ level: "error", message: args.map(String).join(" ") }),
};

function bounded(promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no result after ${seconds}s`)), seconds * 1000);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const raw = (fields) => ({
  fields: Object.entries(fields).map(([key, value]) => ({ key: `llm.prediction.${key}`, value })),
});
const PROMPT = "Write one short sentence about the sea.";
const REPEAT = "Write the word cat ten times.";
const HOT = { temperature: 1.5, topKSampling: 0, topPSampling: false, minPSampling: false, maxTokens: 24 };

try {
  const sdk = await import("@lmstudio/sdk");
  const client = new sdk.LMStudioClient({ baseUrl: values["base-url"], logger });
  const model = await bounded(client.llm.model(values.llm), "model");
  const text = async (prompt, config, what) =>
    (await bounded(model.respond(prompt, config), what)).content;

  summary.results.seed = [];
  for (const seed of [7, 7, 8]) {
    const config = { ...HOT, raw: raw({ seed: { checked: true, value: seed } }) };
    summary.results.seed.push(await text(PROMPT, config, `seed ${seed}`));
  }
  // A prediction's seed wins over the load seed of its instance.
  const seeded = await bounded(
    client.llm.load(values.llm, { identifier: "seed-load", config: { contextLength: 512, seed: 11 } }),
    "load with a seed",
  );
  const seven = { ...HOT, raw: raw({ seed: { checked: true, value: 7 } }) };
  summary.results.predictionSeedWins = (await bounded(seeded.respond(PROMPT, seven), "seed 7")).content;
  await bounded(seeded.unload(), "unload");
  // Log probabilities: this client can ask for them (its fragments do not carry them).
  summary.results.logProbs = [];
  for (const logProbs of [false, 3]) {
    const config = { temperature: 0, maxTokens: 24, logProbs };
    summary.results.logProbs.push(await text(PROMPT, config, `logProbs ${logProbs}`));
  }
  summary.results.presencePenalty = [];
  for (const penalty of [0, 2]) {
    const config = {
      temperature: 0,
      repeatPenalty: false,
      maxTokens: 24,
      raw: raw({ "llama.presencePenalty": { checked: true, value: penalty } }),
    };
    summary.results.presencePenalty.push(await text(REPEAT, config, `presence ${penalty}`));
  }
  const stopped = await bounded(
    model.respond(PROMPT, { temperature: 0, maxTokens: 24, stopStrings: ["is"] }),
    "stop strings",
  );
  summary.results.stopStrings = {
    text: stopped.content,
    stopReason: stopped.stats.stopReason,
  };
  await bounded(client[Symbol.asyncDispose](), "dispose");
  summary.ok = true;
} catch (error) {
  summary.failure = { step: "settings", message: `${error?.name}: ${error?.message}` };
  console.error(error);
}
process.stdout.write(JSON.stringify(summary) + "\n", () => process.exit(summary.ok ? 0 : 1));
