// A stateless MCP server of the 2026-07-28 revision (official SDK v2,
// `@modelcontextprotocol/server`, createMcpHandler) over Streamable HTTP on
// plain node:http, started as `node modern-server.mjs PORT` (0: any free
// port). It listens on 127.0.0.1, serves /mcp (POST; the SDK answers GET and
// DELETE 405; other paths: 404) and prints exactly one line `listening PORT`
// on stdout once ready. Tools:
// `echo` ({text} -> the text), `read_config` (no arguments -> a config with
// fake secrets in it and one harmless line), `delete_all` (no arguments ->
// "deleted everything"). Modern only: a 2025-era request (initialize, no
// `_meta` protocol version) is refused by the SDK with its
// unsupported-protocol-version error, unless LEGACY=stateless, which turns on
// the SDK's stateless 2025 fallback. The SDK itself rejects requests whose
// MCP-Protocol-Version / Mcp-Method / Mcp-Name headers disagree with the body.
// Started by crates/ward/tests/mcp_proxy.rs.
import { createServer } from "node:http";
import { McpServer, createMcpHandler, fromJsonSchema } from "@modelcontextprotocol/server";

const CONFIG = [
  "region = eu-west-1",
  "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
  "token: ghp_0123456789abcdefghijABCDEFGHIJ012345",
].join("\n");

const text = (t) => ({ content: [{ type: "text", text: t }] });

function factory() {
  const server = new McpServer({ name: "ward-modern", version: "1.0.0" });
  server.registerTool(
    "echo",
    {
      description: "Returns its text",
      inputSchema: fromJsonSchema({
        type: "object",
        properties: { text: { type: "string" } },
        required: ["text"],
      }),
    },
    async ({ text: t }) => text(t),
  );
  server.registerTool("read_config", { description: "Reads the configuration" }, async () =>
    text(CONFIG),
  );
  server.registerTool("delete_all", { description: "Deletes everything" }, async () =>
    text("deleted everything"),
  );
  return server;
}

const handler = createMcpHandler(factory, {
  legacy: process.env.LEGACY === "stateless" ? "stateless" : "reject",
});

// node:http <-> fetch Request/Response (what @modelcontextprotocol/node's
// toNodeHandler does; that package has no 2.4.0 release).
const http = createServer(async (req, res) => {
  try {
    if (new URL(req.url, "http://x").pathname !== "/mcp") {
      res.writeHead(404).end();
      return;
    }
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    const headers = new Headers();
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      headers.append(req.rawHeaders[i], req.rawHeaders[i + 1]);
    }
    const abort = new AbortController();
    res.on("close", () => res.writableFinished || abort.abort());
    const hasBody = req.method !== "GET" && req.method !== "HEAD";
    const request = new Request(`http://${req.headers.host ?? "127.0.0.1"}${req.url}`, {
      method: req.method,
      headers,
      body: hasBody ? Buffer.concat(chunks) : undefined,
      signal: abort.signal,
    });
    const response = await handler.fetch(request);
    res.writeHead(response.status, Object.fromEntries(response.headers));
    if (response.body) {
      for await (const chunk of response.body) res.write(chunk);
    }
    res.end();
  } catch (error) {
    console.error("modern-server:", error);
    if (!res.headersSent) res.writeHead(500);
    res.end();
  }
});
http.listen(Number(process.argv[2] ?? 0), "127.0.0.1", () => {
  console.log(`listening ${http.address().port}`);
});
