#!/usr/bin/env node
// Interop scenario for the OFFICIAL JavaScript client (@lmstudio/sdk 1.5.x, pinned in
// package.json) against an LM Studio-compatible server.
//
//   node tests/interop/interop.mjs --base-url ws://127.0.0.1:PORT
//
// Every step is checked the way a user of the client would check it. The first failed check
// stops the run: a message naming the step goes to stderr and the exit status is 1. In every
// case a JSON summary of what was observed (with "ok" and, on failure, "failure") is written
// to stdout as a single line; everything else (including the client's own log output) goes to
// stderr. Each step has its own timeout, because @lmstudio/sdk waits forever for a reply that
// the server never sends or that fails the client's schema validation.

import { parseArgs } from "node:util";

const USAGE = `usage: node interop.mjs --base-url ws://HOST:PORT [--llm KEY] [--embedding KEY] [--step-timeout SECONDS]`;

class CheckFailed extends Error {}

const summary = { client: "@lmstudio/sdk", ok: false };
const sdkLog = []; // warnings and errors the official client logged, in order
let currentStep = "startup";
let sdkLogSeen = 0;

function emitSummaryAndExit(code) {
  process.stdout.write(JSON.stringify(summary) + "\n", () => process.exit(code));
}

function fail(message) {
  throw new CheckFailed(message);
}

function check(condition, message) {
  if (!condition) {
    fail(message);
  }
}

function isInt(value) {
  return typeof value === "number" && Number.isInteger(value);
}

function formatLogArgs(args) {
  return args
    .map(arg => {
      if (typeof arg === "string") return arg;
      if (arg instanceof Error) return `${arg.name}: ${arg.message}`;
      try {
        return JSON.stringify(arg);
      } catch {
        return String(arg);
      }
    })
    .join(" ");
}

// The client's logger: everything goes to stderr (console.info would write to stdout and
// corrupt the summary), and warnings/errors are recorded. A faithful server gives the official
// client no reason to warn: every warning it logs (an invalid packet dropped, a
// communicationWarning received, a socket error) fails the step in which it appeared.
const logger = {
  debug: (...args) => console.error("[sdk debug]", ...args),
  info: (...args) => console.error("[sdk info]", ...args),
  warn: (...args) => {
    sdkLog.push({ step: currentStep, level: "warn", message: formatLogArgs(args) });
    console.error("[sdk warn]", ...args);
  },
  error: (...args) => {
    sdkLog.push({ step: currentStep, level: "error", message: formatLogArgs(args) });
    console.error("[sdk error]", ...args);
  },
};

function checkNoNewSdkLog(step) {
  const fresh = sdkLog.slice(sdkLogSeen);
  sdkLogSeen = sdkLog.length;
  if (fresh.length > 0) {
    fail(
      `the official client logged ${fresh.length} warning(s)/error(s) during "${step}" ` +
        `(a faithful server causes none): ` +
        fresh.map(entry => `[${entry.level}] ${entry.message}`).join(" | "),
    );
  }
}

async function withTimeout(promise, seconds, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new CheckFailed(
            `${what}: no result after ${seconds}s (the client waits forever when the server sends ` +
              `no reply, or a reply that fails its schema validation; see the client's warnings on stderr)`,
          ),
        ),
      seconds * 1000,
    );
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function cosine(a, b) {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return dot / (Math.sqrt(na) * Math.sqrt(nb));
}

function checkStats(stats, where) {
  check(stats !== null && typeof stats === "object", `${where}: result has no stats`);
  check(typeof stats.stopReason === "string", `${where}: stats.stopReason missing`);
  check(
    typeof stats.tokensPerSecond === "number" && stats.tokensPerSecond > 0,
    `${where}: stats.tokensPerSecond should be a positive number, got ${JSON.stringify(stats.tokensPerSecond)}`,
  );
  check(
    typeof stats.timeToFirstTokenSec === "number" && stats.timeToFirstTokenSec >= 0,
    `${where}: stats.timeToFirstTokenSec should be a number >= 0, got ${JSON.stringify(stats.timeToFirstTokenSec)}`,
  );
  check(
    isInt(stats.predictedTokensCount) && stats.predictedTokensCount >= 1,
    `${where}: stats.predictedTokensCount should be an integer >= 1, got ${JSON.stringify(stats.predictedTokensCount)}`,
  );
  check(
    isInt(stats.promptTokensCount) && stats.promptTokensCount >= 1,
    `${where}: stats.promptTokensCount should be an integer >= 1, got ${JSON.stringify(stats.promptTokensCount)}`,
  );
}

async function main() {
  let args;
  try {
    ({ values: args } = parseArgs({
      options: {
        "base-url": { type: "string" },
        llm: { type: "string", default: "smollm2-135m-instruct" },
        embedding: { type: "string", default: "all-minilm-l6-v2" },
        "step-timeout": { type: "string", default: "120" },
      },
      strict: true,
    }));
  } catch (error) {
    console.error(`${error.message}\n${USAGE}`);
    process.exit(2);
  }
  const baseUrl = args["base-url"];
  const stepTimeout = Number(args["step-timeout"]);
  if (baseUrl === undefined || !/^wss?:\/\/[^/]+$/.test(baseUrl) || !(stepTimeout > 0)) {
    console.error(USAGE);
    process.exit(2);
  }
  const llmKey = args.llm;
  const embeddingKey = args.embedding;
  summary.baseUrl = baseUrl;
  summary.nodeVersion = process.version;

  let sdk;
  try {
    sdk = await import("@lmstudio/sdk");
  } catch (error) {
    fail(`cannot import @lmstudio/sdk (${error.message}); run: npm ci --prefix tests/interop`);
  }
  try {
    // "./package.json" is not in the package's exports map, so read the file itself.
    const { readFile } = await import("node:fs/promises");
    const packageJsonUrl = new URL("./node_modules/@lmstudio/sdk/package.json", import.meta.url);
    summary.clientVersion = JSON.parse(await readFile(packageJsonUrl, "utf8")).version;
  } catch {
    summary.clientVersion = null; // informational only
  }

  async function step(name, body) {
    currentStep = name;
    console.error(`--- ${name}`);
    let result;
    try {
      result = await withTimeout(body(), stepTimeout, name);
    } catch (error) {
      // What the client logged usually explains the failure (e.g. a packet it dropped).
      const fresh = sdkLog.slice(sdkLogSeen);
      if (fresh.length > 0) {
        const message = error instanceof CheckFailed ? error.message : `${error?.name}: ${error?.message}`;
        fail(`${message}; the official client logged: ` + fresh.map(e => `[${e.level}] ${e.message}`).join(" | "));
      }
      throw error;
    }
    checkNoNewSdkLog(name);
    return result;
  }

  // 1. Discovery: the check LMStudioClient runs on each well-known port when no baseUrl is
  //    given (GET /lmstudio-greeting: status 200 and a JSON body with lmstudio === true).
  await step("greeting", async () => {
    const greetingUrl = baseUrl.replace(/^ws/, "http") + "/lmstudio-greeting";
    let response;
    try {
      response = await fetch(greetingUrl, { signal: AbortSignal.timeout(10_000) });
    } catch (error) {
      const cause = error.cause?.code ?? error.cause?.message ?? error.message;
      fail(`no LM Studio server at ${baseUrl}: GET ${greetingUrl} failed (${cause})`);
    }
    const body = await response.text();
    check(response.status === 200, `GET ${greetingUrl} answered ${response.status}, expected 200`);
    let json;
    try {
      json = JSON.parse(body);
    } catch {
      fail(`GET ${greetingUrl} did not answer JSON: ${body.slice(0, 200)}`);
    }
    check(json?.lmstudio === true, `GET ${greetingUrl} answered ${body}, expected {"lmstudio":true}`);
    summary.greeting = json;
  });

  const client = new sdk.LMStudioClient({ baseUrl, logger });

  // 2. What is on disk, what is in memory.
  await step("listDownloadedModels", async () => {
    const downloaded = await client.system.listDownloadedModels();
    check(Array.isArray(downloaded), "listDownloadedModels did not return an array");
    summary.downloaded = downloaded.map(m => ({
      modelKey: m.modelKey,
      type: m.type,
      format: m.format,
      path: m.path,
      displayName: m.displayName,
      sizeBytes: m.sizeBytes,
      maxContextLength: m.maxContextLength,
    }));
    const llm = downloaded.find(m => m.modelKey === llmKey);
    check(llm !== undefined, `${llmKey} is not among the downloaded models: ${JSON.stringify(summary.downloaded)}`);
    check(llm.type === "llm", `${llmKey} is listed with type ${JSON.stringify(llm.type)}, expected "llm"`);
    const embedding = downloaded.find(m => m.modelKey === embeddingKey);
    check(embedding !== undefined, `${embeddingKey} is not among the downloaded models`);
    check(
      embedding.type === "embedding",
      `${embeddingKey} is listed with type ${JSON.stringify(embedding.type)}, expected "embedding"`,
    );
  });

  await step("listLoaded", async () => {
    const llms = await client.llm.listLoaded();
    const embeddings = await client.embedding.listLoaded();
    summary.loadedBefore = {
      llm: llms.map(m => ({ identifier: m.identifier, modelKey: m.modelKey })),
      embedding: embeddings.map(m => ({ identifier: m.identifier, modelKey: m.modelKey })),
    };
    // Start from "not loaded", so that get-or-load really loads and reports progress.
    for (const model of llms.filter(m => m.modelKey === llmKey)) {
      await model.unload();
    }
    const after = await client.llm.listLoaded();
    check(
      !after.some(m => m.modelKey === llmKey),
      `${llmKey} is still listed as loaded after unloading it: ${JSON.stringify(after.map(m => m.identifier))}`,
    );
  });

  // 3. Get-or-load with progress.
  const loadProgress = [];
  const model = await step("load", async () => {
    const model = await client.llm.model(llmKey, {
      verbose: false,
      onProgress: progress => loadProgress.push(progress),
    });
    summary.load = {
      identifier: model.identifier,
      modelKey: model.modelKey,
      path: model.path,
      format: model.format,
      displayName: model.displayName,
      progress: loadProgress,
    };
    check(model.modelKey === llmKey, `loaded model has modelKey ${JSON.stringify(model.modelKey)}, expected ${llmKey}`);
    check(loadProgress.length >= 1, "no load progress was reported while loading a model that was not loaded");
    check(
      loadProgress.every(p => typeof p === "number" && p >= 0 && p <= 1),
      `load progress values must lie in [0, 1]: ${JSON.stringify(loadProgress)}`,
    );
    check(
      loadProgress.every((p, i) => i === 0 || p >= loadProgress[i - 1]),
      `load progress went backwards: ${JSON.stringify(loadProgress)}`,
    );
    const loaded = await client.llm.listLoaded();
    check(
      loaded.some(m => m.identifier === model.identifier),
      `${model.identifier} is not listed as loaded after loading it`,
    );
    return model;
  });

  await step("modelInfo", async () => {
    const info = await model.getModelInfo();
    const contextLength = await model.getContextLength();
    summary.modelInfo = {
      identifier: info.identifier,
      modelKey: info.modelKey,
      contextLength: info.contextLength,
      maxContextLength: info.maxContextLength,
      contextLengthFromLoadConfig: contextLength,
    };
    check(info.identifier === model.identifier, `getModelInfo returned ${info.identifier}, expected ${model.identifier}`);
    check(isInt(info.contextLength) && info.contextLength > 0, `contextLength should be a positive integer`);
    check(
      contextLength === info.contextLength,
      `getContextLength() (from getLoadConfig, llm.load.contextLength) is ${contextLength} but getModelInfo().contextLength is ${info.contextLength}`,
    );
  });

  // 4. Streamed chat response.
  await step("chat", async () => {
    const promptProgress = [];
    const prediction = model.respond(
      [
        { role: "system", content: "You are a helpful assistant. Answer briefly." },
        { role: "user", content: "What is the capital of France?" },
      ],
      { maxTokens: 48, temperature: 0, onPromptProcessingProgress: p => promptProgress.push(p) },
    );
    const fragments = [];
    for await (const fragment of prediction) {
      fragments.push(fragment.content);
    }
    const result = await prediction.result();
    summary.chat = {
      text: result.content,
      fragments: fragments.length,
      stats: result.stats,
      modelIdentifier: result.modelInfo?.identifier,
      promptProcessingProgress: promptProgress,
    };
    check(fragments.length >= 1, "no fragment was streamed");
    check(typeof result.content === "string" && result.content.trim().length > 0, "the response text is empty");
    check(result.content === fragments.join(""), "the result content is not the concatenation of the streamed fragments");
    checkStats(result.stats, "chat");
    check(
      ["eosFound", "maxPredictedTokensReached", "stopStringFound"].includes(result.stats.stopReason),
      `chat: unexpected stopReason ${result.stats.stopReason}`,
    );
    check(
      result.stats.predictedTokensCount <= 48,
      `chat: predictedTokensCount ${result.stats.predictedTokensCount} exceeds maxTokens 48`,
    );
    check(result.modelInfo?.identifier === model.identifier, "chat: the result's modelInfo names another model");
  });

  // 5. Cancel a long generation after a few fragments.
  await step("cancel", async () => {
    const controller = new AbortController();
    const maxTokens = 1000;
    const prediction = model.respond("Count from 1 to 1000, separated by commas.", {
      maxTokens,
      signal: controller.signal,
    });
    let received = 0;
    let beforeCancel = 0;
    for await (const fragment of prediction) {
      received += 1;
      if (received === 3) {
        beforeCancel = received;
        controller.abort();
      }
    }
    const result = await prediction.result();
    summary.cancel = {
      fragmentsBeforeCancel: beforeCancel,
      fragmentsTotal: received,
      stopReason: result.stats.stopReason,
      predictedTokensCount: result.stats.predictedTokensCount ?? null,
      text: result.content,
    };
    check(beforeCancel === 3, `the generation ended after ${received} fragment(s), before it could be cancelled`);
    check(
      result.stats.stopReason === "userStopped",
      `a cancelled prediction must end with stopReason "userStopped", got ${JSON.stringify(result.stats.stopReason)}`,
    );
    check(
      result.stats.predictedTokensCount === undefined || result.stats.predictedTokensCount < maxTokens,
      `the cancelled generation did not stop early (${result.stats.predictedTokensCount} tokens)`,
    );
  });

  // 6. Tokenizer.
  await step("tokenize", async () => {
    const text = "The quick brown fox jumps over the lazy dog.";
    const tokens = await model.tokenize(text);
    const count = await model.countTokens(text);
    summary.tokenize = { text, tokens, count };
    check(Array.isArray(tokens) && tokens.length >= 1, "tokenize returned no tokens");
    check(tokens.every(isInt), "tokens must be integers");
    check(count === tokens.length, `countTokens says ${count} but tokenize returned ${tokens.length} tokens`);
  });

  // 7. Prompt template.
  await step("applyPromptTemplate", async () => {
    const userText = "Tell me about the Eiffel Tower.";
    const formatted = await model.applyPromptTemplate([
      { role: "system", content: "You are a tour guide." },
      { role: "user", content: userText },
    ]);
    summary.promptTemplate = { userText, formatted };
    check(typeof formatted === "string", "applyPromptTemplate did not return a string");
    check(formatted.includes(userText), `the formatted prompt does not contain the user text: ${JSON.stringify(formatted)}`);
    check(formatted.length > userText.length, "the formatted prompt adds nothing to the user text");
  });

  // 8. Embeddings.
  await step("embedding", async () => {
    const embeddingModel = await client.embedding.model(embeddingKey, { verbose: false });
    const sentences = [
      "The cat sat on the mat.",
      "A cat was sitting on the rug.",
      "Stock markets fell sharply on Tuesday.",
    ];
    const results = await embeddingModel.embed(sentences);
    const vectors = results.map(r => r.embedding);
    const dims = vectors.map(v => v.length);
    const paraphrase = cosine(vectors[0], vectors[1]);
    const unrelated = Math.max(cosine(vectors[0], vectors[2]), cosine(vectors[1], vectors[2]));
    summary.embedding = {
      identifier: embeddingModel.identifier,
      modelKey: embeddingModel.modelKey,
      sentences,
      dimensions: dims[0],
      cosineParaphrase: paraphrase,
      cosineUnrelated: unrelated,
    };
    check(embeddingModel.modelKey === embeddingKey, `embedding model has modelKey ${embeddingModel.modelKey}`);
    check(dims[0] > 0 && dims.every(d => d === dims[0]), `embeddings have inconsistent dimensions ${JSON.stringify(dims)}`);
    check(vectors.every(v => v.every(x => Number.isFinite(x))), "embeddings contain non-finite numbers");
    check(
      paraphrase > unrelated,
      `paraphrases should be closer than unrelated sentences: cos(paraphrases)=${paraphrase}, cos(unrelated)=${unrelated}`,
    );
  });

  // 9. Unload.
  await step("unload", async () => {
    await model.unload();
    const embeddings = await client.embedding.listLoaded();
    for (const m of embeddings.filter(m => m.modelKey === embeddingKey)) {
      await m.unload();
    }
    const llms = await client.llm.listLoaded();
    const embeddingsAfter = await client.embedding.listLoaded();
    summary.unload = {
      llmStillLoaded: llms.some(m => m.identifier === model.identifier),
      embeddingStillLoaded: embeddingsAfter.some(m => m.modelKey === embeddingKey),
    };
    check(!summary.unload.llmStillLoaded, `${model.identifier} is still listed as loaded after unload()`);
    check(!summary.unload.embeddingStillLoaded, `${embeddingKey} is still listed as loaded after unload()`);
  });

  // 10. Dispose the client (what `await using client = ...` does). It waits until every call
  //     and channel is finished, so it hangs when the server left a channel open (for example
  //     no channelClose after loadSuccess or after a prediction's success).
  await step("dispose", async () => {
    check(typeof Symbol.asyncDispose === "symbol", `node ${process.version} lacks Symbol.asyncDispose`);
    await withTimeout(
      client[Symbol.asyncDispose](),
      10,
      "dispose (the server left a channel open: every channel must end with channelClose)",
    );
  });

  summary.sdkLog = sdkLog;
  summary.ok = true;
}

main().then(
  () => emitSummaryAndExit(0),
  error => {
    const message = error instanceof CheckFailed ? error.message : `${error?.name}: ${error?.message}`;
    summary.ok = false;
    summary.failure = { step: currentStep, message };
    summary.sdkLog = sdkLog;
    console.error(`FAILED at step "${currentStep}": ${message}`);
    if (!(error instanceof CheckFailed) && error?.stack) {
      console.error(error.stack);
    }
    emitSummaryAndExit(1);
  },
);
