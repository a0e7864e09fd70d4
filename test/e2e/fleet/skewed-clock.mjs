// Preload (node --import) that runs a process with its wall clock off by DRIFTWARDEN_TEST_CLOCK_OFFSET_MS:
// Date.now() and new Date() are shifted; timers and monotonic clocks are not (as on a host whose RTC
// or NTP is wrong). Test-only: the fleet's clock-skew test runs an agent under it.
const offset = Number(process.env.DRIFTWARDEN_TEST_CLOCK_OFFSET_MS ?? 0);
if (!Number.isFinite(offset)) throw new Error('DRIFTWARDEN_TEST_CLOCK_OFFSET_MS must be a number of milliseconds');
const RealDate = Date;
class SkewedDate extends RealDate {
  constructor(...args) {
    if (args.length === 0) super(RealDate.now() + offset);
    else super(...args);
  }
  static now() {
    return RealDate.now() + offset;
  }
}
globalThis.Date = SkewedDate;
