// A small seeded PRNG shared by weight initialisation and sampling. Math.random cannot be
// seeded, and both uses need runs that repeat exactly for a given seed.
//
// xoshiro128** (Blackman & Vigna): 128 bits of state, 32-bit operations only, so it stays
// fast in JavaScript without BigInt. The state is filled from the seed with splitmix32,
// which is the recommended way to turn one small seed into a well-mixed starting state.

export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;
  /** Box-Muller yields normals in pairs; the second one is kept for the next call. */
  private spareNormal: number | undefined;

  /** Any finite number is accepted; integers up to 2^53 give distinct streams. */
  constructor(seed: number) {
    if (!Number.isFinite(seed)) throw new Error(`Rng: seed must be a finite number, got ${seed}`);
    const whole = Math.floor(Math.abs(seed));
    // Fold in the high bits and the sign so that seeds >= 2^32 or < 0 do not collide with small ones.
    let x = (whole >>> 0) ^ Math.imul(Math.floor(whole / 2 ** 32) >>> 0, 0x9e3779b1) ^ (seed < 0 ? 0x5bd1e995 : 0);
    const splitmix32 = (): number => {
      x = (x + 0x9e3779b9) | 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s0 = splitmix32();
    this.s1 = splitmix32();
    this.s2 = splitmix32();
    this.s3 = splitmix32();
    // An all-zero state would only ever produce zeros.
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** A generator at this one's state: both give the same numbers from here on. */
  clone(): Rng {
    return Object.assign(Object.create(Rng.prototype) as Rng, this);
  }

  /** Uniform unsigned 32-bit integer. */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform in [0, 1) with 53 random bits (the full precision of a double). */
  next(): number {
    const hi = this.nextU32() >>> 5; // 27 bits
    const lo = this.nextU32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992; // (hi·2^26 + lo) / 2^53
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0) throw new Error(`Rng.int: n must be a positive integer, got ${n}`);
    return Math.floor(this.next() * n);
  }

  /** Standard normal N(0, 1), by the Box-Muller transform. */
  normal(): number {
    if (this.spareNormal !== undefined) {
      const z = this.spareNormal;
      this.spareNormal = undefined;
      return z;
    }
    const u1 = 1 - this.next(); // in (0, 1]: log(0) would be -Infinity
    const u2 = this.next();
    const r = Math.sqrt(-2 * Math.log(u1));
    const theta = 2 * Math.PI * u2;
    this.spareNormal = r * Math.sin(theta);
    return r * Math.cos(theta);
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
