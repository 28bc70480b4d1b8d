"""Verification against the emulator with real tools: g++ C simulation (and, later, RTL)."""
