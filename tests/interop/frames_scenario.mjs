#!/usr/bin/env node
// The user-level steps whose frames are compared with our SDK's (test_frames.py):
// connect, list, get-or-load, respond with settings and structured output, tokenize, embed,
// act with a tool, cancel a prediction. The SAME steps are written with our SDK in
// test_frames.py; keep the two in step.
//
//   node tests/interop/frames_scenario.mjs --base-url ws://127.0.0.1:PORT
//
// Prints one JSON line ({"ok": true} or {"ok": false, "failure": {...}}) on stdout.

import { parseArgs } from "node:util";

const summary = { client: "@lmstudio/sdk", ok: false };
let currentStep = "startup";

const BOOK_SCHEMA = {
  type: "object",
  properties: { title: { type: "string" }, year: { type: "integer" } },
  required: ["title", "year"],
};

const logger = {
  debug: () => {},
  info: (...args) => console.error("[sdk info]", ...args),
  warn: (...args) => console.error("[sdk warn]", ...args),
  error: (...args) => console.error("[sdk error]", ...args),
};

async function main() {
  const { values: args } = parseArgs({ options: { "base-url": { type: "string" } }, strict: true });
  const { LMStudioClient, tool } = await import("@lmstudio/sdk");
  const { z } = await import("zod");
  const client = new LMStudioClient({ baseUrl: args["base-url"], logger });

  currentStep = "list";
  await client.system.listDownloadedModels();

  currentStep = "get-or-load";
  const model = await client.llm.model("scripted-llm", { verbose: false });

  currentStep = "respond";
  const result = await model.respond("Name a famous novel and its year.", {
    temperature: 0.5,
    maxTokens: 64,
    topKSampling: 20,
    structured: { type: "json", jsonSchema: BOOK_SCHEMA },
  });
  summary.parsed = JSON.parse(result.content);

  currentStep = "tokenize";
  await model.tokenize("Hello world");

  currentStep = "embed";
  const embedder = await client.embedding.model("scripted-embedding", { verbose: false });
  await embedder.embed("Hello world");

  currentStep = "act";
  const add = tool({
    name: "add",
    description: "Add two integers.",
    parameters: { a: z.number().int(), b: z.number().int() },
    implementation: ({ a, b }) => a + b,
  });
  await model.act("What is 1 + 2?", [add], { maxPredictionRounds: 2 }); // tools offered
  await model.act("What is 1 + 2?", [add], { maxPredictionRounds: 1 }); // the last round: none

  currentStep = "cancel";
  const slow = await client.llm.model("slow-llm", { verbose: false });
  const prediction = slow.respond("Count to a thousand.");
  for await (const _fragment of prediction) {
    await prediction.cancel();
    break;
  }
  summary.cancelStopReason = (await prediction.result()).stats.stopReason;

  currentStep = "dispose";
  await client[Symbol.asyncDispose]();
  summary.ok = true;
}

main().then(
  () => process.stdout.write(JSON.stringify(summary) + "\n", () => process.exit(0)),
  error => {
    summary.failure = { step: currentStep, message: `${error?.name}: ${error?.message}` };
    console.error(error?.stack);
    process.stdout.write(JSON.stringify(summary) + "\n", () => process.exit(1));
  },
);
