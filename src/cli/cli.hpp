// `agentpane` command line: every command but `serve` and `doctor`'s local checks goes
// through the server's API, so the CLI and the web page see the same behaviour.
#pragma once

namespace agentpane::cli {

// Parses argv, runs the command, returns the process exit code.
int run(int argc, char** argv);

}  // namespace agentpane::cli
