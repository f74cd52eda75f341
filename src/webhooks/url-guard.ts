import { Inject, Injectable } from '@nestjs/common';
import { promises as dns, LookupAddress } from 'node:dns';
import { BlockList, isIP } from 'node:net';
import { Problem } from '../common/problem';
import { APP_CONFIG, type AppConfig } from '../config/config';

/**
 * SSRF guard for tenant webhook URLs (docs/webhooks.md "SSRF"). A URL is checked at registration
 * (every address its host resolves to must be public) and again at connection time: the sender's
 * socket connects only to an address this guard accepted in the same lookup, so a DNS answer that
 * changes after registration (rebinding) cannot reach an internal address.
 */
const BLOCKED = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8], // "this network"
  ['10.0.0.0', 8],
  ['100.64.0.0', 10], // CGNAT
  ['127.0.0.0', 8],
  ['169.254.0.0', 16], // link-local, cloud metadata (169.254.169.254)
  ['172.16.0.0', 12],
  ['192.0.0.0', 24], // IETF protocol assignments
  ['192.0.2.0', 24], // TEST-NET-1
  ['192.88.99.0', 24], // 6to4 relay anycast
  ['192.168.0.0', 16],
  ['198.18.0.0', 15], // benchmarking
  ['198.51.100.0', 24], // TEST-NET-2
  ['203.0.113.0', 24], // TEST-NET-3
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, and 255.255.255.255 broadcast
] as const)
  BLOCKED.addSubnet(net, prefix, 'ipv4');
for (const [net, prefix] of [
  ['::', 128], // unspecified
  ['::1', 128], // loopback
  ['::', 96], // IPv4-compatible (deprecated)
  ['::ffff:0:0:0', 96], // IPv4-translated (RFC 2765; not ::ffff:0:0/96, the mapped form): embeds an IPv4 address
  ['64:ff9b::', 96], // NAT64: would reach an embedded IPv4 address
  ['64:ff9b:1::', 48],
  ['100::', 64], // discard
  ['2001::', 23], // IETF protocol assignments (Teredo, ORCHID, …)
  ['2001:db8::', 32], // documentation
  ['2002::', 16], // 6to4: embeds an IPv4 address
  ['fc00::', 7], // unique local
  ['fe80::', 10], // link-local
  ['fec0::', 10], // site-local (deprecated)
  ['ff00::', 8], // multicast
] as const)
  BLOCKED.addSubnet(net, prefix, 'ipv6');

/** `::ffff:a.b.c.d` / `::ffff:7f00:1` → `a.b.c.d`; anything else → null. */
function mappedIpv4(address: string): string | null {
  const lower = address.toLowerCase();
  const dotted = /^(?:0{0,4}:){0,5}:?ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(lower);
  if (dotted && lower.startsWith('::') && isIP(dotted[1]) === 4) return dotted[1];
  const hex = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(lower);
  if (hex) {
    const hi = parseInt(hex[1], 16);
    const lo = parseInt(hex[2], 16);
    return `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;
  }
  return null;
}

/** True when `address` (an IP literal) is loopback, private, link-local, multicast, reserved, … */
export function isBlockedAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return BLOCKED.check(address, 'ipv4');
  if (family === 6) {
    // An IPv4-mapped address is never a webhook target, public or not: one form per host.
    if (mappedIpv4(address) !== null) return true;
    return BLOCKED.check(address, 'ipv6');
  }
  return true; // not an IP address: refuse rather than guess
}

/** DNS resolution, injectable so tests can make an answer change. */
@Injectable()
export class WebhookResolver {
  async lookup(hostname: string): Promise<LookupAddress[]> {
    return dns.lookup(hostname, { all: true, verbatim: true });
  }
}

/** Raised at connection time when the resolved address is not allowed. */
export class BlockedAddressError extends Error {
  readonly code = 'WEBHOOK_ADDRESS_BLOCKED';
  constructor(hostname: string, address: string) {
    super(`${hostname} resolves to ${address}, which is not a public address`);
  }
}

type LookupCallback = (err: Error | null, address?: string | LookupAddress[], family?: number) => void;

const urlProblem = (message: string) =>
  new Problem('validation_failed', `url: ${message}`, [{ field: 'url', message }]);

@Injectable()
export class WebhookUrlGuard {
  readonly allowPrivate: boolean;

  constructor(
    @Inject(APP_CONFIG) config: AppConfig,
    private readonly resolver: WebhookResolver,
  ) {
    this.allowPrivate = config.webhookAllowPrivate;
  }

  /** Registration: 400 `validation_failed` (field `url`) unless the URL may be a webhook target. */
  async assertAllowed(raw: string): Promise<URL> {
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      throw urlProblem('must be an absolute http(s) URL');
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw urlProblem('must be an http or https URL');
    if (url.username || url.password) throw urlProblem('must not contain credentials');
    if (!url.hostname) throw urlProblem('must have a host');
    if (this.allowPrivate) return url;
    const host = bareHost(url);
    if (isIP(host)) {
      if (isBlockedAddress(host)) throw urlProblem(`${host} is not a public address`);
      return url;
    }
    let addresses: LookupAddress[];
    try {
      addresses = await this.resolver.lookup(host);
    } catch {
      throw urlProblem(`${host} does not resolve`);
    }
    if (addresses.length === 0) throw urlProblem(`${host} does not resolve`);
    const blocked = addresses.find((a) => isBlockedAddress(a.address));
    if (blocked) throw urlProblem(`${host} resolves to ${blocked.address}, which is not a public address`);
    return url;
  }

  /** Connection time, for a literal IP host (net.connect does not call `lookup` for those). */
  checkLiteralHost(url: URL): void {
    const host = bareHost(url);
    if (!this.allowPrivate && isIP(host) && isBlockedAddress(host)) throw new BlockedAddressError(host, host);
  }

  /**
   * A `lookup` for net/tls.connect (undici's `connect.lookup`): resolves with the injected resolver
   * and fails the connection if any answer is not public, so the socket never opens to it.
   */
  readonly lookup = (hostname: string, options: { all?: boolean }, callback: LookupCallback): void => {
    this.resolver.lookup(hostname).then(
      (addresses) => {
        if (addresses.length === 0)
          return callback(Object.assign(new Error(`${hostname} does not resolve`), { code: 'ENOTFOUND' }));
        if (!this.allowPrivate) {
          const blocked = addresses.find((a) => isBlockedAddress(a.address));
          if (blocked) return callback(new BlockedAddressError(hostname, blocked.address));
        }
        if (options?.all) callback(null, addresses);
        else callback(null, addresses[0].address, addresses[0].family);
      },
      (err: Error) => callback(err),
    );
  };
}

function bareHost(url: URL): string {
  return url.hostname.replace(/^\[(.*)\]$/, '$1');
}
