/**
 * `images` are read through the sandbox, capped by EXAI_MAX_IMAGE_MB and checked by signature
 * (SPEC §4.4): unit checks of readImage on real files, and calls of `chat` through an in-process
 * runtime whose fake provider records what it was sent.
 */
import { closeSync, openSync, ftruncateSync, writeFileSync, writeSync } from "node:fs";
import { realpath } from "node:fs/promises";
import { join } from "node:path";

import { afterEach, describe, expect, it } from "vitest";

import { imageType, readImage } from "../src/files/image.js";
import { createFileReader } from "../src/files/reader.js";
import { createFileSandbox } from "../src/files/sandbox.js";
import { rejection, startTestRuntime, tempDir, type TestRuntime } from "./support/harness.js";

/** A valid 1×1 PNG. */
const TINY_PNG = Buffer.from(
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==",
  "base64",
);
const MIB = 1024 * 1024;

const cleanups: Array<() => Promise<void> | void> = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function directory(): Promise<string> {
  const dir = tempDir("exai-images-");
  cleanups.push(dir.cleanup);
  return realpath(dir.path);
}

/** A sparse file: `head` then holes up to `size` bytes (no disk blocks are written for the holes). */
function sparse(file: string, head: Buffer, size: number): void {
  const fd = openSync(file, "w");
  try {
    writeSync(fd, head);
    ftruncateSync(fd, size);
  } finally {
    closeSync(fd);
  }
}

describe("imageType", () => {
  it.each([
    ["png", TINY_PNG],
    ["jpeg", Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 0x10])],
    ["gif", Buffer.from("GIF89a\x01\x00\x01\x00", "latin1")],
    ["webp", Buffer.from("RIFF\x24\x00\x00\x00WEBPVP8 ", "latin1")],
    [undefined, Buffer.from("GLM_API_KEY=secret\0KIMI_API_KEY=other\0")],
    [undefined, Buffer.from("RIFF\x24\x00\x00\x00WAVEfmt ", "latin1")],
    [undefined, Buffer.alloc(0)],
  ])("%s", (expected, bytes) => {
    expect(imageType(bytes)).toBe(expected);
  });
});

describe("readImage", () => {
  it("accepts a tiny PNG whatever its extension, typed by its bytes", async () => {
    const dir = await directory();
    const file = join(dir, "shot.jpg");
    writeFileSync(file, TINY_PNG);
    const reader = createFileReader({ sandbox: createFileSandbox({ allowedRoots: [dir] }) });
    const image = await readImage(reader, file, "images[0]", 20 * MIB);
    expect(image).toEqual({
      type: "png",
      bytes: TINY_PNG.length,
      dataUrl: `data:image/png;base64,${TINY_PNG.toString("base64")}`,
    });
  });

  it("refuses a 1.5 GB image before reading it, naming the field, the path and the limit", async () => {
    const dir = await directory();
    const file = join(dir, "huge.png");
    sparse(file, TINY_PNG, 1_500_000_000);
    const reader = createFileReader({ sandbox: createFileSandbox({ allowedRoots: [dir] }) });
    const rss = process.memoryUsage().rss;
    const started = performance.now();
    const error = await rejection(readImage(reader, file, "images[0]", 20 * MIB));
    expect(performance.now() - started).toBeLessThan(1000);
    expect(process.memoryUsage().rss - rss).toBeLessThan(50 * MIB);
    expect(error.code).toBe("INVALID_ARGUMENT");
    expect(error.message).toBe(
      `images[0]: ${JSON.stringify(file)} is 1.5 GB; images are limited to 20 MiB each (EXAI_MAX_IMAGE_MB). ` +
        `Pass a smaller image`,
    );
    expect(error.details).toMatchObject({ field: "images[0]", path: file });
  });

  it("refuses non-image bytes with INVALID_ARGUMENT naming the field and the path", async () => {
    const dir = await directory();
    const file = join(dir, "diagram.png");
    writeFileSync(file, "not really a picture\n");
    const reader = createFileReader({ sandbox: createFileSandbox({ allowedRoots: [dir] }) });
    const error = await rejection(readImage(reader, file, "images[2]", 20 * MIB));
    expect(error.code).toBe("INVALID_ARGUMENT");
    expect(error.message).toContain(
      `images[2]: ${JSON.stringify(file)} is not a PNG, JPEG, GIF or WebP image`,
    );
    expect(error.details).toMatchObject({ field: "images[2]", path: file });
  });

  it("refuses /proc/self/environ even when every directory is a root", async () => {
    const reader = createFileReader({ sandbox: createFileSandbox({ allowedRoots: ["/"] }) });
    const error = await rejection(readImage(reader, "/proc/self/environ", "images[0]", 20 * MIB));
    expect(error.code).toBe("FILE_ACCESS_DENIED");
    expect(error.message).toContain(
      `images[0]: "/proc/self/environ" is a secret file (/proc/ (kernel pseudo-files))`,
    );
  });

  it("checks data URLs the same way", async () => {
    const reader = createFileReader({ sandbox: createFileSandbox({ allowedRoots: ["/"] }) });
    const url = `data:image/gif;base64,${TINY_PNG.toString("base64")}`;
    await expect(readImage(reader, url, "images[0]", 20 * MIB)).resolves.toMatchObject({ type: "png" });
    const text = `data:image/png;base64,${Buffer.from("GLM_API_KEY=x").toString("base64")}`;
    expect((await rejection(readImage(reader, text, "images[1]", 20 * MIB))).message).toBe(
      "images[1]: the data URL does not hold a PNG, JPEG, GIF or WebP image",
    );
    const big = `data:image/png;base64,${"A".repeat(2 * MIB)}`;
    expect((await rejection(readImage(reader, big, "images[0]", MIB))).message).toContain(
      "images are limited to 1 MiB each (EXAI_MAX_IMAGE_MB)",
    );
  });
});

describe("images through chat", () => {
  async function start(env: Record<string, string> = {}): Promise<TestRuntime> {
    const test = await startTestRuntime(env);
    cleanups.push(() => test.close());
    return test;
  }

  const chat = (test: TestRuntime, images: string[]) =>
    test.runtime.executor.call({
      tool: "chat",
      arguments: { prompt: "What is in the picture?", model: "glm-4.5v", images },
    });

  it("sends a valid PNG to the provider as a data URL", async () => {
    const test = await start();
    const dir = await directory();
    const file = join(dir, "pixel.png");
    writeFileSync(file, TINY_PNG);
    const outcome = await chat(test, [file]);
    expect(outcome.error).toBeUndefined();
    const [request] = test.fake.chatRequests();
    expect(JSON.stringify(request?.body)).toContain(`data:image/png;base64,${TINY_PNG.toString("base64")}`);
  });

  it("never sends the server's environment as an image, with every directory a root", async () => {
    const test = await start({ EXAI_ALLOWED_ROOTS: "/" });
    const outcome = await chat(test, ["/proc/self/environ"]);
    expect(outcome.error?.code).toBe("FILE_ACCESS_DENIED");
    expect(outcome.error?.message).toContain("images[0]");
    expect(test.fake.requests).toEqual([]);
  });

  it("refuses an image over EXAI_MAX_IMAGE_MB before anything is sent", async () => {
    const test = await start({ EXAI_MAX_IMAGE_MB: "1" });
    const dir = await directory();
    const file = join(dir, "big.png");
    sparse(file, TINY_PNG, 2 * MIB);
    const outcome = await chat(test, [file]);
    expect(outcome.error?.code).toBe("INVALID_ARGUMENT");
    expect(outcome.error?.message).toContain("images are limited to 1 MiB each (EXAI_MAX_IMAGE_MB)");
    expect(test.fake.chatRequests()).toEqual([]);
  });
});
