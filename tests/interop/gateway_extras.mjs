#!/usr/bin/env node
// Structured output and a tool call with the OFFICIAL JavaScript client (@lmstudio/sdk,
// pinned in package.json), through our server used as a gateway to an OpenAI-compatible
// upstream (tests/interop/test_upstream_interop.py runs it).
//
//   node tests/interop/gateway_extras.mjs --base-url ws://127.0.0.1:PORT --llm KEY
//
// Prints one JSON line on stdout: {"ok", "structured", "toolCalls", "rounds", "sdkLog",
// "failure"?}. Everything else goes to stderr. Each call is bounded by --timeout seconds.

import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    "base-url": { type: "string" },
    llm: { type: "string" },
    timeout: { type: "string", default: "180" },
  },
});
const seconds = Number(values.timeout);
const summary = { client: "@lmstudio/sdk", ok: false, sdkLog: [] };
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

const SCHEMA = {
  type: "object",
  properties: { answer: { type: "string", enum: ["yes", "no"] } },
  required: ["answer"],
};

try {
  const sdk = await import("@lmstudio/sdk");
  const client = new sdk.LMStudioClient({ baseUrl: values["base-url"], logger });
  const model = await bounded(client.llm.model(values.llm), "model");

  const reply = await bounded(
    model.respond("Is the sky blue? Answer in JSON.", {
      structured: { type: "json", jsonSchema: SCHEMA },
      maxTokens: 40,
      temperature: 0,
    }),
    "structured respond",
  );
  summary.structured = JSON.parse(reply.content);

  const calls = [];
  const add = sdk.rawFunctionTool({
    name: "add",
    description: "Add two integers.",
    parametersJsonSchema: {
      type: "object",
      properties: { a: { type: "integer" }, b: { type: "integer" } },
      required: ["a", "b"],
    },
    implementation: ({ a, b }) => {
      calls.push([a, b]);
      return a + b;
    },
  });
  const act = await bounded(
    model.act("Use the add tool to add 2 and 3.", [add], {
      maxPredictionRounds: 2,
      maxTokens: 40,
      temperature: 0,
    }),
    "act",
  );
  summary.toolCalls = calls;
  summary.rounds = act.rounds;
  await bounded(client[Symbol.asyncDispose](), "dispose");
  summary.ok = true;
} catch (error) {
  summary.failure = { step: "extras", message: `${error?.name}: ${error?.message}` };
  console.error(error);
}
process.stdout.write(JSON.stringify(summary) + "\n", () => process.exit(summary.ok ? 0 : 1));
