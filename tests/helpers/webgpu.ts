// Whether a test file's WebGPU tests run: they skip, saying why, where WebGPU cannot start, except
// under CI, where .ci/run installs Mesa's lavapipe and a refusal must fail the tests instead.

/** The refusal of a scratchgpt run in a child process whose webgpu provider could not start, else undefined. */
export function webgpuRefusal(r: { code: number; stderr: string }): string | undefined {
  return r.code !== 0 && /could not start the webgpu execution provider/.test(r.stderr) ? r.stderr.trim() : undefined;
}

/** True when `file`'s WebGPU tests are to be skipped (WebGPU `unavailable`, not CI); warns once with how to install it. */
export function skipWithoutWebgpu(file: string, unavailable: string | undefined): boolean {
  const skip = unavailable !== undefined && !process.env.CI;
  if (skip) {
    console.warn(
      `${file} skipped: WebGPU cannot start here (no Vulkan adapter). On Debian bookworm, install Mesa's lavapipe from backports ` +
        `as .ci/run does (apt-get install -t bookworm-backports mesa-vulkan-drivers libvulkan1; bookworm's own Mesa 22.3 is too old).\n${unavailable}`,
    );
  }
  return skip;
}
