/**
 * @module Rate limits on failed authentication and enrollment (issue 21): a source guessing tokens is
 * answered 429 with Retry-After after its burst, whatever it guesses (bearer tokens, enrollment tokens,
 * host credentials, dashboard sign-ins), while an honest host at another address goes on reporting;
 * X-Forwarded-For is believed only from configured proxies; the limiter's memory is bounded.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { SourceLimiter, sourceKey } from '../../controller/rate-limit.js';
import { openStore } from '../../controller/store/index.js';
import { Harness, IMAGE, MINUTE } from './harness.js';

const ATTACKER = '203.0.113.66';
const HONEST = '10.0.4.17';

describe('rate limits', () => {
  let h: Harness;
  afterEach(async () => {
    await h.close();
  });
  /** A controller with the shipped limits (the harness otherwise lifts them). */
  const start = async (rateLimit: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) => {
    h = await Harness.start(await openStore('sqlite::memory:'), { config: { rateLimit, ...extra } });
  };

  it('attack: 2,000 wrong tokens from one address: 20 refused 401, then 429 with Retry-After; an honest host elsewhere still reports', async () => {
    await start();
    const honest = await h.enroll('web-1');
    honest.from = HONEST;
    const statuses = new Map<number, number>();
    let last: Awaited<ReturnType<typeof h.req>> | undefined;
    const started = Date.now();
    for (let i = 0; i < 2000; i++) {
      last = await h.req('GET', '/api/v1/hosts', { token: `dwt_guess-${i}`, remoteAddress: ATTACKER });
      statuses.set(last.status, (statuses.get(last.status) ?? 0) + 1);
      // The honest host reports in the middle of the flood.
      if (i === 1000) expect((await honest.scan()).status).toBe(200);
    }
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(Object.fromEntries(statuses)).toEqual({ 401: 20, 429: 1980 });
    expect(last!.body).toEqual({
      error: 'DW_ERR_RATE_LIMITED',
      message: `too many failed authentications from ${ATTACKER}; retry in 3s`,
    });
    expect(last!.headers['retry-after']).toBe('3');
    // Even the attacker's right guess is not looked at while it is out of attempts...
    expect((await h.req('GET', '/api/v1/hosts', { token: h.tokens.viewer, remoteAddress: ATTACKER })).status).toBe(429);
    // ...while valid credentials from elsewhere are never counted or slowed.
    for (let i = 0; i < 50; i++)
      expect((await h.req('GET', '/api/v1/hosts', { token: h.tokens.viewer, remoteAddress: HONEST })).status).toBe(200);
    expect((await honest.scan()).status).toBe(200);
    expect((await h.store.listReports('web-1', { limit: 10 })).length).toBe(2);
    // The bucket refills at 20 a minute: after Retry-After, one more attempt.
    h.clock.advance(3_000);
    expect((await h.req('GET', '/api/v1/hosts', { token: 'dwt_again', remoteAddress: ATTACKER })).status).toBe(401);
    expect((await h.req('GET', '/api/v1/hosts', { token: 'dwt_again', remoteAddress: ATTACKER })).status).toBe(429);
  });

  it('counts every kind of failed authentication against the one source: host credentials, enrollment tokens, sign-ins, cookies', async () => {
    await start({ failedAuth: { max: 4, per: '1m' } });
    const web1 = await h.enroll('web-1');
    const from = { remoteAddress: ATTACKER };
    expect((await h.req('POST', '/api/v1/reports', { token: 'dwh_forged', body: web1.report(), ...from })).status).toBe(
      401,
    );
    expect(
      (
        await h.req('POST', '/api/v1/enroll', {
          token: 'dwt_forged',
          body: { hostId: 'fake-1', imageId: IMAGE },
          ...from,
        })
      ).status,
    ).toBe(401);
    expect((await h.req('POST', '/api/v1/session', { body: { token: 'dwt_forged' }, ...from })).status).toBe(401);
    expect(
      (await h.req('GET', '/api/v1/hosts', { headers: { cookie: 'dw_session=forged.mac' }, ...from })).status,
    ).toBe(401);
    const blocked = await h.req('POST', '/api/v1/session', { body: { token: h.tokens.admin }, ...from });
    expect(blocked.status).toBe(429);
    expect(blocked.headers['retry-after']).toBe('15');
    expect(
      (await h.req('POST', '/api/v1/reports', { token: web1.credential, body: web1.report(), ...from })).status,
    ).toBe(429);
    // Liveness needs no credential and is never limited.
    expect((await h.req('GET', '/healthz', from)).status).toBe(200);
    // The honest host, from its own address, is not affected.
    web1.from = HONEST;
    expect((await web1.scan()).status).toBe(200);
  });

  it('limits enrollment attempts per source, even with a valid token, and not other sources', async () => {
    await start({ enroll: { max: 3, per: '1m' } });
    const enroll = (id: string, remoteAddress: string) =>
      h.req('POST', '/api/v1/enroll', { token: h.tokens.agent, body: { hostId: id, imageId: IMAGE }, remoteAddress });
    for (let i = 0; i < 3; i++) expect((await enroll(`fake-${i}`, ATTACKER)).status).toBe(201);
    const r = await enroll('fake-3', ATTACKER);
    expect(r.status).toBe(429);
    expect(r.body.message).toBe(`too many enrollment attempts from ${ATTACKER}; retry in 20s`);
    expect((await enroll('web-1', HONEST)).status).toBe(201);
    h.clock.advance(20_000);
    expect((await enroll('fake-3', ATTACKER)).status).toBe(201);
    expect((await h.store.listHosts({ limit: 10 })).hosts.map((x) => x.id).sort()).toEqual([
      'fake-0',
      'fake-1',
      'fake-2',
      'fake-3',
      'web-1',
    ]);
  });

  it('does not believe X-Forwarded-For by default, and believes it from a configured proxy', async () => {
    await start({ failedAuth: { max: 2, per: '1m' } });
    for (let i = 0; i < 3; i++)
      await h.req('GET', '/api/v1/hosts', {
        token: 'dwt_x',
        remoteAddress: ATTACKER,
        headers: { 'x-forwarded-for': `198.51.100.${i}` },
      });
    expect(
      (
        await h.req('GET', '/api/v1/hosts', {
          token: h.tokens.viewer,
          remoteAddress: ATTACKER,
          headers: { 'x-forwarded-for': '198.51.100.99' },
        })
      ).status,
    ).toBe(429);
    await h.close();

    await start({ failedAuth: { max: 2, per: '1m' } }, { trustProxy: ['10.0.0.0/8'] });
    const viaProxy = (client: string, token: string) =>
      h.req('GET', '/api/v1/hosts', { token, remoteAddress: '10.1.2.3', headers: { 'x-forwarded-for': client } });
    for (let i = 0; i < 3; i++) await viaProxy(ATTACKER, 'dwt_x');
    expect((await viaProxy(ATTACKER, h.tokens.viewer)).status).toBe(429);
    expect((await viaProxy(HONEST, h.tokens.viewer)).status).toBe(200);
  });

  it('refuses a trustProxy entry that is not an address or CIDR block, naming it', async () => {
    await expect(start({}, { trustProxy: ['10.0.0.0/33'] })).rejects.toThrow(/trustProxy\.0|trustProxy/);
    h = await Harness.start(await openStore('sqlite::memory:')); // for afterEach
  });
});

describe('SourceLimiter', () => {
  it('keeps at most maxSources sources, forgetting the least recently seen', () => {
    const l = new SourceLimiter('t', { max: 2, perMs: MINUTE }, 100);
    for (let i = 0; i < 5000; i++) l.take(`192.0.2.${i % 250}-${i}`, 0);
    expect(l.size).toBe(100);
  });

  it('forgets a source whose bucket has refilled', () => {
    const l = new SourceLimiter('t', { max: 2, perMs: MINUTE }, 100);
    l.take('a', 0);
    l.assertAllowed('a', 0, 'x');
    expect(l.size).toBe(1);
    l.assertAllowed('a', MINUTE, 'x');
    expect(l.size).toBe(0);
  });

  it('counts IPv6 sources by /64 and IPv4-mapped addresses as IPv4', () => {
    expect(sourceKey('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2::/64');
    expect(sourceKey('2001:db8:1:2:ffff:ffff:ffff:ffff')).toBe('2001:db8:1:2::/64');
    expect(sourceKey('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(sourceKey('::ffff:203.0.113.9')).toBe('203.0.113.9');
    expect(sourceKey('203.0.113.9')).toBe('203.0.113.9');
  });
});
