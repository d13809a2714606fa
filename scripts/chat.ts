/**
 * Terminal chat on the client SDK.
 *   npm run chat -- --user alice --device d1 --with bob     the direct conversation with bob
 *   npm run chat -- --user bob --device d1 --conv <ID>      an existing conversation
 *   npm run chat -- --user carol --group bob,alice --title "Team"   a new group
 * Type a line to send it; incoming messages print with their seq. SWITCHBOARD_URL overrides the edge.
 * A conversation from someone you share no accepted conversation with is a message request:
 * `/accept`, `/decline` or `/block` it (`/unblock USER` lifts a block).
 */
import readline from 'node:readline';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import path from 'node:path';
import { SwitchboardClient, createConversation, devToken, type SocketLike } from '@switchboard/protocol/client';
import { FileStore } from '@switchboard/protocol/client/node';
import { ROOT } from './lib/processes.ts';

const { values: a } = parseArgs({
  options: {
    user: { type: 'string' },
    device: { type: 'string', default: 'cli' },
    conv: { type: 'string' },
    with: { type: 'string' },
    group: { type: 'string' },
    title: { type: 'string' },
    url: { type: 'string', default: process.env.SWITCHBOARD_URL ?? 'http://127.0.0.1:8787' },
  },
});

function die(msg: string): never {
  console.error(msg);
  process.exit(2);
}

async function main(): Promise<void> {
  if (!a.user) die('usage: npm run chat -- --user NAME [--device ID] (--with USER | --conv ID | --group U1,U2 [--title T])');
  const url = a.url!;
  const token = await devToken(url, a.user, a.device!).catch((e: Error) => die(`cannot get a dev token from ${url}: ${e.message} (is \`npm start\` running?)`));
  let conv = a.conv;
  if (!conv) {
    if (a.with) conv = (await createConversation(url, token, { members: [a.with], direct: true })).id;
    else if (a.group) conv = (await createConversation(url, token, { members: a.group.split(','), title: a.title })).id;
    else die('name a conversation: --with USER, --conv ID or --group U1,U2');
  }
  const print = (line: string) => {
    readline.clearLine(process.stdout, 0);
    readline.cursorTo(process.stdout, 0);
    process.stdout.write(line + '\n');
    rl.prompt(true);
  };
  // Unsent lines and what this device has seen survive a restart of the chat.
  const store = new FileStore(path.join(ROOT, '.data', 'chat', `${a.user}-${a.device}.json`));
  const client = new SwitchboardClient({
    url,
    token: () => token,
    store,
    onSent: (s) => print(`   sent (after restart) as seq ${s.seq}`),
    onStoreError: (e) => print(`!! local store: ${e.message}`),
    socket: (u) => new WebSocket(u) as unknown as SocketLike,
    onMessage: (m) => print(`[${m.seq}] ${m.from}${m.from === a.user ? `/${m.dev}` : ''}: ${m.body}`),
    onStatus: (s, d) => print(`-- ${s}${d ? ` (${d})` : ''}`),
    onRequest: (c) => c === conv && print('-- a message request: /accept, /decline or /block'),
  });
  const rl = readline.createInterface({ input: process.stdin, output: process.stdout, prompt: `${a.user}> ` });
  print(`-- conversation ${conv} (others join with --conv ${conv})`);
  client.follow(conv);
  await client.connect();
  rl.prompt();
  rl.on('line', (line) => {
    const body = line.trim();
    const [cmd, arg] = body.split(/\s+/);
    const done = (what: string) => (r: unknown) => print(`-- ${what}: ${JSON.stringify(r)}`);
    const failed = (e: Error) => print(`!! ${e.message}`);
    if (cmd === '/accept') client.consent.accept(conv!).then(done('accepted'), failed);
    else if (cmd === '/decline' || cmd === '/block') client.consent.decline(conv!, { block: cmd === '/block' }).then(done('declined'), failed);
    else if (cmd === '/unblock' && arg) client.consent.unblock(arg).then(done('unblocked'), failed);
    else if (body) client.send(conv!, body).then((s) => print(`   sent as seq ${s.seq}`), (e: Error) => print(`!! not sent: ${e.message}`));
    rl.prompt();
  });
  rl.on('close', () => {
    client.close();
    void store.close().then(() => process.exit(0));
  });
}

main().catch((e) => die(e instanceof Error ? e.message : String(e)));
