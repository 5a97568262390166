#!/usr/bin/env node
// Catalogue and error scenario for the OFFICIAL JavaScript client (@lmstudio/sdk 1.5.x).
//
//   node tests/interop/interop_catalog.mjs --base-url ws://127.0.0.1:PORT
//
// Run against `lmsdk serve --catalog docs/examples/catalog.toml`. Models are named the LM
// Studio way (key and path), and LM Studio's errors are checked the way a JS user sees them
// (the error's message: the server's title, or the client's rendering of its display data,
// e.g. for generic.noModelMatchingQuery). A JSON summary
// goes to stdout as one line ("ok", and "failure" naming the step); exit status 1 on failure.

import { parseArgs } from "node:util";

const LLM_KEY = "llama-3.2-1b-instruct";
const LLM_PATH = "hugging-quants/llama-3.2-1b-instruct";
const EMBEDDING_KEY = "text-embedding-nomic-embed-text-v1.5";
const EMBEDDING_PATH = "nomic-ai/nomic-embed-text-v1.5";
const PNG_BASE64 = Buffer.concat([
  Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
  Buffer.alloc(64),
]).toString("base64");

class CheckFailed extends Error {}

const summary = { client: "@lmstudio/sdk", ok: false };
const sdkLog = [];
let currentStep = "startup";

function check(condition, message) {
  if (!condition) throw new CheckFailed(message);
}

async function rejection(promise) {
  try {
    await promise;
  } catch (error) {
    return { message: String(error?.message) };
  }
  throw new CheckFailed("expected an error, the call succeeded");
}

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
      "step-timeout": { type: "string", default: "120" },
      jit: { type: "boolean", default: false },
    },
    strict: true,
  });
  const stepTimeout = Number(args["step-timeout"]) * 1000;
  const { LMStudioClient } = await import("@lmstudio/sdk");
  const client = new LMStudioClient({ baseUrl: args["base-url"], logger, verboseErrorMessages: false });

  async function step(name, body) {
    currentStep = name;
    console.error(`--- ${name}`);
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new CheckFailed(`${name}: no result after ${stepTimeout / 1000}s`)), stepTimeout);
    });
    try {
      return await Promise.race([body(), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  if (args.jit) {
    // LM Studio's Auto-Evict, against a catalogue with model-a, model-b and model-c.
    await step("explicit load", () => client.llm.load("model-c", { identifier: "pinned", verbose: false }));
    await step("jit loads", async () => {
      await client.llm.model("model-a", { verbose: false });
      const afterA = (await client.llm.listLoaded()).map(m => m.identifier).sort();
      await client.llm.model("model-b", { verbose: false }); // evicts the JIT-loaded model-a
      const afterB = (await client.llm.listLoaded()).map(m => m.identifier).sort();
      summary.jit = { afterA, afterB };
    });
    await step("image to a vision model", async () => {
      // model-c ("pinned") is declared vision = true
      const image = await client.files.prepareImageBase64("p.png", PNG_BASE64);
      const pinned = await client.llm.model("pinned", { verbose: false });
      const reply = await pinned.respond([{ role: "user", content: "What is this?", images: [image] }], {
        maxTokens: 8,
      });
      summary.visionReply = reply.content;
    });
    await step("unload", async () => {
      for (const m of await client.llm.listLoaded()) await m.unload();
    });
    await client[Symbol.asyncDispose]();
    summary.sdkLog = sdkLog;
    summary.ok = true;
    return;
  }

  await step("list", async () => {
    const downloaded = await client.system.listDownloadedModels();
    const byKey = Object.fromEntries(downloaded.map(m => [m.modelKey, m]));
    check(byKey[LLM_KEY]?.path === LLM_PATH, `${LLM_KEY} is not listed with its path`);
    check(byKey[EMBEDDING_KEY]?.path === EMBEDDING_PATH, `${EMBEDDING_KEY} is not listed with its path`);
  });

  const llm = await step("llm by key and by path", async () => {
    const byKey = await client.llm.model(LLM_KEY, { verbose: false });
    const byPath = await client.llm.model(LLM_PATH, { verbose: false });
    check(byKey.identifier === LLM_KEY && byPath.identifier === LLM_KEY, "the LLM was loaded twice");
    const reply = await byPath.respond("Say hello.", { maxTokens: 8 });
    summary.llm = { identifier: byKey.identifier, text: reply.content };
    return byKey;
  });

  await step("embedding by key and by path", async () => {
    const embedder = await client.embedding.model(EMBEDDING_PATH, { verbose: false });
    check(embedder.identifier === EMBEDDING_KEY, `identifier ${embedder.identifier}`);
    const again = await client.embedding.model(EMBEDDING_KEY, { verbose: false });
    check(again.identifier === EMBEDDING_KEY, "the embedding model was loaded twice");
    const tokens = await embedder.tokenize("Hello world");
    summary.embedding = {
      dimensions: (await embedder.embed("Hello world")).embedding.length,
      tokens: tokens.length,
      count: await embedder.countTokens("Hello world"),
    };
  });

  await step("unload unknown", async () => {
    summary.unloadUnknown = await rejection(client.llm.unload("nobody"));
  });

  await step("identifier taken", async () => {
    const twin = await client.llm.load(LLM_KEY, { identifier: "twin", verbose: false });
    summary.identifierTaken = await rejection(client.llm.load(LLM_KEY, { identifier: "twin", verbose: false }));
    await twin.unload();
  });

  await step("image to a text-only model", async () => {
    const image = await client.files.prepareImageBase64("pixel.png", PNG_BASE64);
    summary.imageRefused = await rejection(
      llm.respond([{ role: "user", content: "What is this?", images: [image] }]),
    );
  });

  await step("unload", async () => {
    await client.llm.unload(LLM_KEY);
    await client.embedding.unload(EMBEDDING_KEY);
    summary.loadedAfter = (await client.llm.listLoaded()).map(m => m.identifier);
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
