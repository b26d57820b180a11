// Killing an exec's process tree where the engine has no API for it (Docker exec, Kubernetes
// exec). Every exec we start carries a random marker in its environment, inherited by all its
// children; a second exec, as the same user, SIGKILLs every process whose environment holds
// the marker. The marker is ours (hex), never user input, and reaches the shell as an
// argument ("$1"), not as code. A process that clears its environment escapes it (the
// in-sandbox agent of a later issue replaces this with process groups).
#pragma once

namespace agentpane {

inline constexpr const char* kExecMarkerVar = "AGENTPANE_EXEC_ID";

// sh -c kKillByMarkerScript sh <marker>. Rescans until a pass finds nothing (children
// forked while it scans), at most 10 passes; always exits 0.
inline constexpr const char* kKillByMarkerScript =
    "i=0; while [ $i -lt 10 ]; do i=$((i+1)); n=0; "
    "for p in /proc/[0-9]*; do "
    "if tr '\\0' '\\n' < $p/environ 2>/dev/null | grep -qx \"AGENTPANE_EXEC_ID=$1\"; then "
    "kill -9 ${p#/proc/} 2>/dev/null && n=$((n+1)); fi; done; "
    "[ $n -eq 0 ] && break; done; exit 0";

}  // namespace agentpane
