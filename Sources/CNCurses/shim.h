#ifndef KVDUEL_CNCURSES_SHIM_H
#define KVDUEL_CNCURSES_SHIM_H
// SwiftPM drops pkg-config's -D_XOPEN_SOURCE flags, so ask for the wide-character API here.
#ifndef NCURSES_WIDECHAR
#define NCURSES_WIDECHAR 1
#endif
#include <locale.h>
#include <wchar.h>
#if defined(__APPLE__)
#include <ncurses.h>
#else
#include <ncursesw/curses.h>
#endif
#endif
