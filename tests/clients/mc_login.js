// Test-only: try to log in to a Minecraft Java server with minecraft-protocol
// (pinned, see package.json / package-lock.json), a third-party client nobody here
// wrote, so container-manager's responder is checked against a real implementation
// of the login protocol. The responder is expected to refuse the login with a
// Login Disconnect ("starting, come back in N s").
//
// Usage: node mc_login.js CONNECT_HOST PORT SERVER_ADDRESS USERNAME [timeout_ms]
//   Connects to CONNECT_HOST:PORT in offline mode (auth: 'offline', no Mojang or
//   Microsoft traffic) with protocol version 1.20.4 (protocol number 765); the
//   handshake carries SERVER_ADDRESS through minecraft-protocol's `fakeHost`
//   option (src/client/setProtocol.js: serverHost = options.fakeHost), and PORT.
//   timeout_ms (default 10000) bounds the whole attempt.
//   Finds minecraft-protocol in $CM_MC_NODE_MODULES (set by install.sh), else
//   through the usual require() resolution.
// Prints one JSON line on stdout:
//   {"kicked": "<reason as plain text>", "raw": "<reason exactly as received: a JSON text component>"}  exit 0
//   {"error": "<message>"}                                                                               exit 1
//   An error is: connection refused/reset, the socket closing without a
//   disconnect packet, the server accepting the login, or the timeout.
'use strict'

const path = require('path')
const Module = require('module')

const VERSION = '1.20.4' // protocol 765

function usage () {
  process.stderr.write('usage: node mc_login.js CONNECT_HOST PORT SERVER_ADDRESS USERNAME [timeout_ms]\n')
  process.exit(2)
}

const args = process.argv.slice(2)
if (args.length < 4 || args.length > 5) usage()
const [connectHost, portArg, serverAddress, username] = args
const port = parseInt(portArg, 10)
const timeoutMs = args[4] ? parseInt(args[4], 10) : 10000
if (!(port > 0 && port < 65536) || !(timeoutMs > 0)) usage()

const modules = process.env.CM_MC_NODE_MODULES
const req = modules ? Module.createRequire(path.join(path.resolve(modules), '_')) : require

let done = false
function finish (obj, code) {
  if (done) return
  done = true
  process.stdout.write(JSON.stringify(obj) + '\n', () => process.exit(code))
}

// Fallback flattener for a text component when prismarine-chat cannot parse it.
function plain (c) {
  if (c == null) return ''
  if (typeof c === 'string') return c
  if (Array.isArray(c)) return c.map(plain).join('')
  let s = typeof c.text === 'string' ? c.text : (c.translate || '')
  if (Array.isArray(c.extra)) s += c.extra.map(plain).join('')
  return s
}

function reasonText (raw) {
  let parsed
  try {
    parsed = JSON.parse(raw)
  } catch (e) {
    return raw // not JSON: show it as it came
  }
  try {
    const ChatMessage = req('prismarine-chat')(VERSION)
    return new ChatMessage(parsed).toString()
  } catch (e) {
    return plain(parsed)
  }
}

let client
try {
  const mc = req('minecraft-protocol')
  client = mc.createClient({
    host: connectHost,
    port,
    fakeHost: serverAddress,
    username,
    auth: 'offline',
    version: VERSION,
    hideErrors: true
  })
} catch (e) {
  finish({ error: `createClient: ${e && e.message ? e.message : String(e)}` }, 1)
}

if (client) {
  const timer = setTimeout(() => {
    finish({ error: `timeout: no disconnect within ${timeoutMs} ms (state ${client.state})` }, 1)
    client.end('timeout')
  }, timeoutMs)

  // Login Disconnect (login state, id 0x00): { reason: <JSON text component string> }.
  client.on('disconnect', (packet) => {
    const raw = packet && packet.reason
    finish({ kicked: reasonText(raw), raw }, 0)
  })
  // Login Success: the server let us in, which a sleeping server's responder must not.
  client.on('success', (packet) => {
    finish({ error: `server accepted the login (login success for ${packet && packet.username})` }, 1)
    client.end('accepted')
  })
  client.on('encryption_begin', () => {
    finish({ error: 'server requested encryption (online mode); expected a disconnect' }, 1)
    client.end('encryption')
  })
  client.on('error', (err) => {
    finish({ error: err && err.message ? err.message : String(err) }, 1)
  })
  // The socket's end can overtake the last packet still in the parser pipeline:
  // give a disconnect packet that arrived just before the close a moment to surface.
  client.on('end', (reason) => {
    setTimeout(() => finish({
      error: `connection closed without a disconnect packet (${reason}, state ${client.state})`
    }, 1), 200)
  })
}
