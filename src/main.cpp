#include "cli/cli.hpp"

int main(int argc, char** argv) {
  return agentpane::cli::run(argc, argv);
}
