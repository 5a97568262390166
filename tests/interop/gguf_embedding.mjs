#!/usr/bin/env node
// GGUF embedding scenario for the OFFICIAL JavaScript client (@lmstudio/sdk 1.5.x).
//
//   node tests/interop/gguf_embedding.mjs --base-url ws://127.0.0.1:PORT --key KEY
//
// Run against a server whose catalogue serves a GGUF embedding model (llama.cpp's embedding
// mode) under KEY: list, load, embed, tokenize, count tokens, context length and info. A JSON
// summary goes to stdout as one line ("ok", and "failure" naming the step); exit status 1 on
// failure.

import { parseArgs } from "node:util";

const summary = { client: "@lmstudio/sdk", ok: false };
const sdkLog = [];
let currentStep = "startup";

const logger = {
  debug: () => {},
  info: (...args) => console.error("[sdk info]", ...args),
  warn: (...args) => {
    sdkLog.push({ step: currentStep, level: "warn", message: args.map(String).join(" ") });
    console.error("[sdk warn]", ...args);
  },
  error: (...args) => {
    sdkLog.push({ step: currentStep, level: "error", message: args.map(String).join(" ") });
    console.error("[sdk error]", ...args);
  },
};

async function main() {
  const { values: args } = parseArgs({
    options: {
      "base-url": { type: "string" },
      key: { type: "string" },
      "step-timeout": { type: "string", default: "120" },
    },
    strict: true,
  });
  const stepTimeout = Number(args["step-timeout"]) * 1000;
  const key = args.key;
  const { LMStudioClient } = await import("@lmstudio/sdk");
  const client = new LMStudioClient({ baseUrl: args["base-url"], logger, verboseErrorMessages: false });

  async function step(name, body) {
    currentStep = name;
    console.error(`--- ${name}`);
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${name}: no result after ${stepTimeout / 1000}s`)), stepTimeout);
    });
    try {
      return await Promise.race([body(), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  await step("list", async () => {
    const listed = (await client.system.listDownloadedModels("embedding")).find(m => m.modelKey === key);
    summary.listed = {
      type: listed?.type,
      format: listed?.format,
      architecture: listed?.architecture,
      maxContextLength: listed?.maxContextLength,
    };
  });
  const model = await step("load and embed", async () => {
    const model = await client.embedding.model(key, { verbose: false });
    const { embedding } = await model.embed("Hello world");
    summary.embedding = { dimensions: embedding.length, head: embedding.slice(0, 8) };
    summary.batch = (await model.embed(["one", "two", "three"])).map(e => e.embedding.length);
    return model;
  });
  await step("tokens", async () => {
    summary.tokens = Array.from(await model.tokenize("Hello world"));
    summary.count = await model.countTokens("Hello world");
  });
  await step("context length and info", async () => {
    summary.contextLength = await model.getContextLength();
    summary.identifier = (await model.getModelInfo()).identifier;
  });
  await step("unload", async () => {
    await model.unload();
    summary.loadedAfter = (await client.embedding.listLoaded()).map(m => m.identifier);
  });
  await client[Symbol.asyncDispose]();
  summary.sdkLog = sdkLog;
  summary.ok = true;
}

main().then(
  () => process.stdout.write(JSON.stringify(summary) + "\n", () => process.exit(0)),
  error => {
    summary.failure = { step: currentStep, message: `${error?.name}: ${error?.message}` };
    summary.sdkLog = sdkLog;
    console.error(`FAILED at step "${currentStep}": ${error?.message}`);
    process.stdout.write(JSON.stringify(summary) + "\n", () => process.exit(1));
  },
);
