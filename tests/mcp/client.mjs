// The official MCP SDK (v1) as a client of a stdio server started as
// `node client.mjs COMMAND ARGS...`, or, when the first argument is an
// http:// URL (`node client.mjs http://HOST:PORT/mcp`), of a Streamable HTTP
// server of the 2025 era (initialize, Mcp-Session-Id). Lists the tools, then
// runs each call given as JSON in CALLS (an array of {name, arguments}); with
// AFTER (the same shape) it lists again and runs those calls too. Prints one
// JSON object: {tools, calls, tools_after, calls_after}, calls as
// [{name, ok, text | error}]. Over HTTP only: HEADERS (optional, a JSON
// object) adds request headers, and when connecting fails it prints
// {connect_error} instead (exit status 0).
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [command, ...args] = process.argv.slice(2);
const calls = JSON.parse(process.env.CALLS ?? "[]");
const client = new Client({ name: "ward-test", version: "1.0.0" });
if (/^https?:\/\//.test(command)) {
  const headers = JSON.parse(process.env.HEADERS ?? "{}");
  try {
    await client.connect(new StreamableHTTPClientTransport(new URL(command), { requestInit: { headers } }));
  } catch (error) {
    console.log(JSON.stringify({ connect_error: String(error.message ?? error) }));
    process.exit(0);
  }
} else {
  await client.connect(new StdioClientTransport({ command, args, stderr: "inherit" }));
}
async function run(list) {
  const done = [];
  for (const call of list) {
    try {
      const result = await client.callTool(call);
      const text = (result.content ?? []).map((c) => c.text ?? "").join("");
      done.push({ name: call.name, ok: !result.isError, text });
    } catch (error) {
      done.push({ name: call.name, ok: false, error: String(error.message ?? error) });
    }
  }
  return done;
}
const names = async () => (await client.listTools()).tools.map((t) => t.name);
const out = { tools: await names() };
out.calls = await run(calls);
if (process.env.AFTER) {
  out.tools_after = await names();
  out.calls_after = await run(JSON.parse(process.env.AFTER));
}
console.log(JSON.stringify(out));
await client.close();
