// The official MCP SDK as a client of a stdio server started as
// `node client.mjs COMMAND ARGS...`: lists the tools, then runs each call
// given as JSON in CALLS (an array of {name, arguments}), and prints one
// JSON object: {tools: [names], calls: [{name, ok, text | error}]}.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";

const [command, ...args] = process.argv.slice(2);
const calls = JSON.parse(process.env.CALLS ?? "[]");
const client = new Client({ name: "ward-test", version: "1.0.0" });
await client.connect(new StdioClientTransport({ command, args, stderr: "inherit" }));
const listed = await client.listTools();
const out = { tools: listed.tools.map((t) => t.name), calls: [] };
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
