"""A scripted stand-in for the Anthropic Messages API, for running the real
Claude Code CLI headless in tests: `python3 model.py SCRIPT LOG`.

SCRIPT is a JSON list of turns; turn N answers the request that carries N
`tool_result` blocks: `{"tool": NAME, "input": {...}, "id": ID}` asks for a
tool call, `{"text": "..."}` ends. Requests without tools (side calls the
CLI makes) get a short text. Every request body is appended to LOG as one
JSON line. Prints `listening on PORT` once it serves on 127.0.0.1.
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SCRIPT = json.load(open(sys.argv[1]))
LOG = sys.argv[2]


def results_in(body):
    count = 0
    for message in body.get("messages", []):
        content = message.get("content")
        if isinstance(content, list):
            count += sum(1 for block in content if block.get("type") == "tool_result")
    return count


def events(turn):
    yield "message_start", {
        "type": "message_start",
        "message": {
            "id": "msg_scripted", "type": "message", "role": "assistant",
            "model": "claude-scripted", "content": [], "stop_reason": None,
            "stop_sequence": None, "usage": {"input_tokens": 10, "output_tokens": 1},
        },
    }
    if "tool" in turn:
        yield "content_block_start", {
            "type": "content_block_start", "index": 0,
            "content_block": {"type": "tool_use", "id": turn["id"], "name": turn["tool"], "input": {}},
        }
        yield "content_block_delta", {
            "type": "content_block_delta", "index": 0,
            "delta": {"type": "input_json_delta", "partial_json": json.dumps(turn["input"])},
        }
        stop = "tool_use"
    else:
        yield "content_block_start", {
            "type": "content_block_start", "index": 0,
            "content_block": {"type": "text", "text": ""},
        }
        yield "content_block_delta", {
            "type": "content_block_delta", "index": 0,
            "delta": {"type": "text_delta", "text": turn["text"]},
        }
        stop = "end_turn"
    yield "content_block_stop", {"type": "content_block_stop", "index": 0}
    yield "message_delta", {
        "type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
        "usage": {"output_tokens": 5},
    }
    yield "message_stop", {"type": "message_stop"}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_HEAD(self):
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def do_GET(self):
        self.do_HEAD()

    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw)
        except ValueError:
            body = {}
        with open(LOG, "a") as log:
            log.write(json.dumps({"path": self.path, "body": body}) + "\n")
        if not self.path.startswith("/v1/messages") or "count_tokens" in self.path:
            answer = json.dumps({"input_tokens": 10}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)
            return
        if body.get("tools"):
            index = results_in(body)
            turn = SCRIPT[min(index, len(SCRIPT) - 1)]
        else:
            turn = {"text": "ok"}
        stream = "".join(
            f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in events(turn)
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("content-length", str(len(stream)))
        self.end_headers()
        self.wfile.write(stream)


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(f"listening on {server.server_address[1]}", flush=True)
server.serve_forever()
