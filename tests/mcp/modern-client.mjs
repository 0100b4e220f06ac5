// The official MCP SDK v2 (`@modelcontextprotocol/client`) as a client of
// the 2026-07-28 revision over Streamable HTTP, started as
// `node modern-client.mjs http://HOST:PORT/mcp`: connects pinned to
// 2026-07-28 (a `server/discover` first, no fallback to `initialize`), lists
// the tools, then runs each call given as JSON in CALLS (an array of
// {name, arguments}). HEADERS (optional, a JSON object) adds request
// headers; NEGOTIATION (optional: `auto`, `legacy` or a revision to pin)
// replaces the pin. Prints one JSON object: {tools, calls}, calls as
// [{name, ok, text | error}]; when connecting fails, {connect_error} instead
// (exit status 0 either way).
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";

const url = new URL(process.argv[2]);
const calls = JSON.parse(process.env.CALLS ?? "[]");
const headers = JSON.parse(process.env.HEADERS ?? "{}");
const negotiation = process.env.NEGOTIATION ?? "2026-07-28";
const mode = negotiation === "auto" || negotiation === "legacy" ? negotiation : { pin: negotiation };
const client = new Client(
  { name: "ward-test", version: "1.0.0" },
  { versionNegotiation: { mode } },
);
try {
  await client.connect(new StreamableHTTPClientTransport(url, { requestInit: { headers } }));
} catch (error) {
  console.log(JSON.stringify({ connect_error: String(error.message ?? error) }));
  process.exit(0);
}
const out = { tools: (await client.listTools()).tools.map((t) => t.name) };
out.calls = [];
for (const call of calls) {
  try {
    const result = await client.callTool(call);
    const text = (result.content ?? []).map((c) => c.text ?? "").join("");
    out.calls.push({ name: call.name, ok: !result.isError, text });
  } catch (error) {
    out.calls.push({ name: call.name, ok: false, error: String(error.message ?? error) });
  }
}
console.log(JSON.stringify(out));
await client.close();
