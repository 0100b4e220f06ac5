// The official MCP SDK as a client of a stdio server started as
// `node client.mjs COMMAND ARGS...`: lists the tools, then runs each call
// given as JSON in CALLS (an array of {name, arguments}); with AFTER (the
// same shape) it lists again and runs those calls too. Prints one JSON
// object: {tools, calls, tools_after, calls_after}, calls as
// [{name, ok, text | error}].
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";

const [command, ...args] = process.argv.slice(2);
const calls = JSON.parse(process.env.CALLS ?? "[]");
const client = new Client({ name: "ward-test", version: "1.0.0" });
await client.connect(new StdioClientTransport({ command, args, stderr: "inherit" }));
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
