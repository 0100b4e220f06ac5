"""A scripted stand-in for the OpenAI Responses API, for running the real
Codex CLI headless in tests: `python3 model.py SCRIPT LOG`.

SCRIPT is a JSON list of turns; turn N answers the `POST /v1/responses`
request whose input carries N `function_call_output` items:
`{"call": ID, "cmd": LINE}` asks for Codex's shell tool (`exec_command`)
with call id ID, `{"text": "..."}` ends. Every request (method, path and
JSON body) is appended to LOG as one JSON line. It is also the proxy the
CLI is given, so a request meant for anywhere else (a `CONNECT`, or a
proxied `http://` URL) is logged too, and refused, as is any other path.
Prints `listening on PORT` once it serves on 127.0.0.1.
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SCRIPT = json.load(open(sys.argv[1]))
LOG = sys.argv[2]


def outputs_in(body):
    return sum(
        1 for item in body.get("input", []) if item.get("type") == "function_call_output"
    )


def item(turn, index):
    if "call" in turn:
        return {
            "type": "function_call", "id": f"fc_{index}", "call_id": turn["call"],
            "name": "exec_command", "arguments": json.dumps({"cmd": turn["cmd"]}),
        }
    return {
        "type": "message", "role": "assistant", "id": f"msg_{index}",
        "content": [{"type": "output_text", "text": turn["text"]}],
    }


def events(turn, index):
    response = f"resp_{index}"
    yield {"type": "response.created", "response": {"id": response}}
    yield {"type": "response.output_item.done", "output_index": 0, "item": item(turn, index)}
    yield {
        "type": "response.completed",
        "response": {
            "id": response,
            "usage": {
                "input_tokens": 10, "input_tokens_details": None, "output_tokens": 5,
                "output_tokens_details": None, "total_tokens": 15,
            },
        },
    }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def log(self, body):
        with open(LOG, "a") as log:
            log.write(json.dumps({"method": self.command, "path": self.path, "body": body}) + "\n")

    def refuse(self):
        self.send_response(403)
        self.send_header("content-length", "0")
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True

    def do_CONNECT(self):
        self.log(None)
        self.refuse()

    def do_HEAD(self):
        self.log(None)
        self.refuse()

    def do_GET(self):
        self.log(None)
        self.refuse()

    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw)
        except ValueError:
            body = {"undecoded": len(raw)}
        self.log(body)
        if self.path != "/v1/responses":
            self.refuse()
            return
        index = outputs_in(body)
        turn = SCRIPT[min(index, len(SCRIPT) - 1)]
        stream = "".join(
            f"event: {event['type']}\ndata: {json.dumps(event)}\n\n"
            for event in events(turn, index)
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("content-length", str(len(stream)))
        self.end_headers()
        self.wfile.write(stream)


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(f"listening on {server.server_address[1]}", flush=True)
server.serve_forever()
