import { test, expect } from '@playwright/test';
import * as http from 'node:http';

/**
 * Through the README's nginx configuration (`.ci/cluster` runs exactly it) in front of two
 * instances: one client address cannot take the load balancer's connections from everybody
 * else, and a client cannot choose its request ID. Clients are told apart by their source
 * address on the loopback network (all of 127.0.0.0/8 reaches this host).
 */

type Answer = { status: number; headers: http.IncomingHttpHeaders; response: http.IncomingMessage };

/** Sends a request from `localAddress` and resolves once the answer's head is in. */
function send(
  base: string,
  path: string,
  localAddress: string,
  options: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const url = new URL(path, base);
    const request = http.request(
      {
        host: url.hostname,
        port: url.port,
        path: url.pathname + url.search,
        method: options.method ?? 'GET',
        headers: options.headers,
        localAddress,
        agent: false,
      },
      (response) => resolve({ status: response.statusCode ?? 0, headers: response.headers, response }),
    );
    request.on('error', reject);
    request.setTimeout(10_000, () => request.destroy(new Error(`no answer to ${path} in 10 s`)));
    request.end(options.body);
  });
}

/** Reads a whole answer's body. */
async function body(answer: Answer): Promise<string> {
  let text = '';
  for await (const chunk of answer.response) text += chunk;
  return text;
}

/** Registers a new account from `localAddress` and returns its session cookie (`id=…`). */
async function register(base: string, localAddress: string, name: string): Promise<string> {
  const email = `${name}-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 7)}@example.com`;
  const answer = await send(base, '/api/register', localAddress, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: new URLSearchParams({ email, password: 'correct horse battery staple' }).toString(),
  });
  await body(answer);
  expect(answer.status, 'registered').toBe(200);
  const cookie = (answer.headers['set-cookie'] ?? []).map((c) => c.split(';')[0]).find((c) => /^id=./.test(c));
  expect(cookie, 'a session cookie').toBeTruthy();
  return cookie!;
}

test('one client flooding event streams is cut at its share while another client is served', async ({}, testInfo) => {
  const base = testInfo.project.use.baseURL!;
  const flooder = '127.0.0.2';
  const other = '127.0.0.3';
  // Five logins of one client (one after the other: one address may hash only a few passwords
  // at once), six streams each (what the instances allow per login): 30.
  const cookies: string[] = [];
  for (let i = 0; i < 5; i++) cookies.push(await register(base, flooder, `flood${i}`));
  const open: Answer[] = [];
  const statuses: number[] = [];
  try {
    for (let i = 0; i < 30; i++) {
      const answer = await send(base, '/api/session/events', flooder, {
        headers: { cookie: cookies[i % 5], accept: 'text/event-stream' },
      });
      statuses.push(answer.status);
      if (answer.status === 200) open.push(answer);
      else await body(answer);
    }
    const held = statuses.filter((s) => s === 200).length;
    const refused = statuses.filter((s) => s === 429).length;
    console.log(`[js-cluster] one client: ${held} streams held, ${refused} refused (429) of 30`);
    expect(held, `statuses: ${statuses.join(',')}`).toBe(16);
    expect(refused).toBe(14);

    // Meanwhile another client is served: a page, a login, a stream of its own.
    const page = await send(base, '/', other);
    await body(page);
    expect(page.status).toBe(200);
    const cookie = await register(base, other, 'bystander');
    const stream = await send(base, '/api/session/events', other, {
      headers: { cookie, accept: 'text/event-stream' },
    });
    expect(stream.status, 'the other client gets its stream').toBe(200);
    open.push(stream);
  } finally {
    for (const answer of open) answer.response.destroy();
  }
});

test('a client cannot choose its request ID through the load balancer', async ({}, testInfo) => {
  const base = testInfo.project.use.baseURL!;
  const answer = await send(base, '/healthz', '127.0.0.4', { headers: { 'x-request-id': 'planted-by-the-client' } });
  await body(answer);
  expect(answer.status).toBe(200);
  const id = String(answer.headers['x-request-id'] ?? '');
  expect(id).not.toBe('planted-by-the-client');
  // nginx's own $request_id: 32 hex digits, passed on and echoed by the instance.
  expect(id).toMatch(/^[0-9a-f]{32}$/);
});
