// Killing an exec's process tree where the engine has no API for it (Docker exec, Kubernetes
// exec). Every exec we start carries a random marker in its environment, inherited by all its
// children; a second exec, as the same user, SIGKILLs every process whose environment holds
// the marker. The marker is ours (hex), never user input, and reaches the shell as an
// argument ("$1"), not as code. A process that clears its environment escapes it (the
// in-sandbox agent of a later issue replaces this with process groups).
#pragma once

namespace agentpane {

inline constexpr const char* kExecMarkerVar = "AGENTPANE_EXEC_ID";

// sh -c kKillByMarkerScript sh <marker>. Each pass stops every process that holds the marker,
// then kills them all: a parent killed after its child (they are scanned in /proc's order,
// not the tree's) would otherwise run on for a moment and go to its next command (seen: a
// shell's `sleep` killed, the shell then ran the line after it). Rescans until a pass finds
// nothing (children forked during a pass), at most 10 passes; always exits 0.
inline constexpr const char* kKillByMarkerScript =
    "i=0; while [ $i -lt 10 ]; do i=$((i+1)); found=; "
    "for p in /proc/[0-9]*; do "
    "if tr '\\0' '\\n' 2>/dev/null < $p/environ | grep -qx \"AGENTPANE_EXEC_ID=$1\"; then "
    "kill -STOP ${p#/proc/} 2>/dev/null && found=\"$found ${p#/proc/}\"; fi; done; "
    "[ -z \"$found\" ] && break; kill -9 $found 2>/dev/null; done; exit 0";

}  // namespace agentpane
