/* Pod sandbox ("pause") process for the test cluster: sleeps until SIGINT/SIGTERM and
 * reaps any zombie re-parented to it (it is PID 1 of the pod's namespaces).
 * Built with `gcc -static` by scripts/cluster/build.sh; no image is pulled. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_term(int sig) { (void)sig; _exit(0); }
static void on_chld(int sig) {
  (void)sig;
  while (waitpid(-1, NULL, WNOHANG) > 0) {}
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "-v") == 0) { puts("pause (agentpane) 1.0"); return 0; }
  if (getpid() != 1) fprintf(stderr, "pause: warning, not PID 1\n");
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_term;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sa.sa_handler = on_chld;
  sa.sa_flags = SA_NOCLDSTOP;
  sigaction(SIGCHLD, &sa, NULL);
  for (;;) pause();
}
