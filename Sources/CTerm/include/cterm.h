#ifndef KVDUEL_CTERM_H
#define KVDUEL_CTERM_H
// Tiny C helpers for what Swift cannot import from ncurses (A_* macros, the stdscr/COLS/LINES
// globals under strict concurrency) and for async-signal handlers that restore the terminal.
#include <stdint.h>

// Attributes (A_* macros are not imported into Swift).
unsigned int cterm_attr_normal(void);
unsigned int cterm_attr_bold(void);
unsigned int cterm_attr_dim(void);
unsigned int cterm_attr_reverse(void);
unsigned int cterm_attr_underline(void);
unsigned int cterm_color_pair(int pair);

// Screen access without touching C globals from Swift.
void *cterm_stdscr(void);
int cterm_lines(void);
int cterm_cols(void);

/// Writes one grapheme (a UTF-32 string of up to 8 code points) at (y, x) with attributes and colour pair.
int cterm_put_cell(int y, int x, const int32_t *wchars, int count, unsigned int attrs, int pair);

// Terminal lifecycle.
/// setlocale(LC_ALL, ""), initscr, raw, noecho, keypad, nonl, cursor off. Returns 0 on success.
int cterm_start(int input_timeout_ms);
/// endwin() if curses is active; safe to call more than once and from the atexit hook.
void cterm_stop(void);
int cterm_is_active(void);
/// Colours: returns 1 if the terminal has colours and they were started.
int cterm_start_colors(void);
int cterm_init_pair(int pair, int fg, int bg);
int cterm_color_count(void);

/// Reads one key. Returns -1 when nothing arrived within the timeout, 0 for a character (in *out),
/// 1 for a function key (KEY_* code in *out).
int cterm_get_key(int32_t *out);
/// Sets the input timeout in milliseconds (negative = block).
void cterm_set_timeout(int ms);
/// keyname() of a function key code, e.g. "kUP2", "KEY_SR"; NULL if unknown.
const char *cterm_key_name(int code);
/// Defines escape sequences for Shift-Up/Shift-Down (xterm/tmux style) when the terminfo entry
/// has none, mapping them to KEY_SR/KEY_SF.
void cterm_define_shift_keys(void);

/// Key codes for the bracketed-paste start (ESC[200~) and end (ESC[201~) sequences, which
/// cterm_start defines and enables (ESC[?2004h); every restore path disables it (ESC[?2004l).
int cterm_key_paste_start(void);
int cterm_key_paste_end(void);

int cterm_key_resize(void);
int cterm_key_sr(void);
int cterm_key_sf(void);

/// Flushes to the physical screen: wnoutrefresh(stdscr) + doupdate().
void cterm_refresh(void);
void cterm_move_cursor(int y, int x, int visible);

// Signals.
/// Installs handlers: SIGINT/SIGTERM/SIGHUP set a flag (the loop quits cleanly; a second signal
/// restores the terminal and exits at once); SIGSEGV/SIGBUS/SIGILL/SIGFPE/SIGABRT/SIGTRAP restore
/// the terminal and re-raise; atexit restores the terminal too.
void cterm_install_signal_handlers(void);
/// The signal number that asked the app to quit, or 0.
int cterm_quit_signal(void);

/// 1 if the current LC_CTYPE is UTF-8 (call after cterm_setlocale).
int cterm_setlocale(void);
int cterm_locale_is_utf8(void);
/// wcwidth() of one code point (locale-dependent; -1 when unprintable).
int cterm_wcwidth(int32_t c);

#endif
