#ifndef KVDUEL_CTERM_H
#define KVDUEL_CTERM_H
// Tiny C helpers for ncurses macros that Swift cannot import (A_*, ACS_*, getmaxyx).
int cterm_placeholder(void);
#endif
