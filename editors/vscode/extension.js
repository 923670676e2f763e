// Starts `cnndsl lsp` (stdio) for .cnn files. The command comes from the `cnndsl.server.command` setting.
const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const [command, ...args] = vscode.workspace.getConfiguration("cnndsl").get("server.command", ["cnndsl", "lsp"]);
  const server = { command, args };
  client = new LanguageClient(
    "cnndsl",
    "cnndsl",
    { run: server, debug: server },
    { documentSelector: [{ scheme: "file", language: "cnn" }] },
  );
  context.subscriptions.push(client);
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
