// C side of the terminal edge: attribute macros, lifecycle and signal handlers.
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#ifndef NCURSES_WIDECHAR
#define NCURSES_WIDECHAR 1
#endif
#ifndef _XOPEN_SOURCE_EXTENDED
#define _XOPEN_SOURCE_EXTENDED 1
#endif
#include <locale.h>
#include <wchar.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <langinfo.h>
#if defined(__APPLE__)
#include <ncurses.h>
#else
#include <ncursesw/curses.h>
#endif
#include "cterm.h"

static volatile sig_atomic_t g_active = 0;
static volatile sig_atomic_t g_paste_mode = 0;
#define CTERM_KEY_PASTE_START (KEY_MAX + 1)
#define CTERM_KEY_PASTE_END (KEY_MAX + 2)

// Bracketed paste (xterm, tmux, most terminals): the terminal wraps pasted text in ESC[200~ …
// ESC[201~, so a pasted Ctrl-N or escape sequence arrives as text, not as keys. Turned off on
// every way out (stop, signal, crash, exit) with the rest of the terminal state.
static const char k_paste_on[] = "\033[?2004h";
static const char k_paste_off[] = "\033[?2004l";

static void paste_mode_off(void) {
    if (!g_paste_mode) return;
    g_paste_mode = 0;
    ssize_t w = write(1, k_paste_off, sizeof k_paste_off - 1);   // async-signal-safe
    (void)w;
}
static volatile sig_atomic_t g_quit_signal = 0;
static int g_handlers_installed = 0;

unsigned int cterm_attr_normal(void) { return (unsigned int)A_NORMAL; }
unsigned int cterm_attr_bold(void) { return (unsigned int)A_BOLD; }
unsigned int cterm_attr_dim(void) { return (unsigned int)A_DIM; }
unsigned int cterm_attr_reverse(void) { return (unsigned int)A_REVERSE; }
unsigned int cterm_attr_underline(void) { return (unsigned int)A_UNDERLINE; }
unsigned int cterm_color_pair(int pair) { return (unsigned int)COLOR_PAIR(pair); }

void *cterm_stdscr(void) { return (void *)stdscr; }
int cterm_lines(void) { return LINES; }
int cterm_cols(void) { return COLS; }

int cterm_put_cell(int y, int x, const int32_t *wchars, int count, unsigned int attrs, int pair) {
    wchar_t buf[9];
    if (count > 8) count = 8;
    for (int i = 0; i < count; i++) buf[i] = (wchar_t)wchars[i];
    buf[count] = 0;
    cchar_t cc;
    if (setcchar(&cc, buf, (attr_t)attrs, (short)pair, NULL) != OK) {
        wchar_t q[2] = { L'?', 0 };
        setcchar(&cc, q, (attr_t)attrs, (short)pair, NULL);
    }
    return mvwadd_wch(stdscr, y, x, &cc);
}

int cterm_setlocale(void) {
    return setlocale(LC_ALL, "") != NULL;
}

int cterm_locale_is_utf8(void) {
    const char *cs = nl_langinfo(CODESET);
    if (!cs) return 0;
    return strcmp(cs, "UTF-8") == 0 || strcmp(cs, "utf8") == 0 || strcmp(cs, "UTF8") == 0;
}

int cterm_wcwidth(int32_t c) { return wcwidth((wchar_t)c); }

int cterm_start(int input_timeout_ms) {
    if (g_active) return 0;
    if (initscr() == NULL) return -1;
    g_active = 1;
    raw();
    noecho();
    nonl();
    keypad(stdscr, TRUE);
    meta(stdscr, TRUE);
    set_escdelay(25);
    curs_set(0);
    wtimeout(stdscr, input_timeout_ms);
    leaveok(stdscr, FALSE);
    // The paste brackets as keys of their own (KEY_MAX+1, +2), whatever the terminfo entry says.
    define_key("\033[200~", CTERM_KEY_PASTE_START);
    define_key("\033[201~", CTERM_KEY_PASTE_END);
    fflush(stdout);
    ssize_t w = write(1, k_paste_on, sizeof k_paste_on - 1);
    (void)w;
    g_paste_mode = 1;
    return 0;
}

int cterm_key_paste_start(void) { return CTERM_KEY_PASTE_START; }
int cterm_key_paste_end(void) { return CTERM_KEY_PASTE_END; }

void cterm_stop(void) {
    paste_mode_off();
    if (g_active && !isendwin()) {
        curs_set(1);
        endwin();
    }
    g_active = 0;
}

int cterm_is_active(void) { return g_active; }

int cterm_start_colors(void) {
    if (!has_colors()) return 0;
    if (start_color() != OK) return 0;
    use_default_colors();
    return 1;
}

int cterm_init_pair(int pair, int fg, int bg) { return init_pair((short)pair, (short)fg, (short)bg); }
int cterm_color_count(void) { return COLORS; }

int cterm_get_key(int32_t *out) {
    wint_t ch = 0;
    int r = wget_wch(stdscr, &ch);
    if (r == ERR) return -1;
    *out = (int32_t)ch;
    return r == KEY_CODE_YES ? 1 : 0;
}

void cterm_set_timeout(int ms) { wtimeout(stdscr, ms); }

const char *cterm_key_name(int code) { return keyname(code); }

void cterm_define_shift_keys(void) {
    // xterm / tmux (xterm-keys on) send CSI 1;2 A / B for Shift-Up / Shift-Down.
    if (key_defined("\033[1;2A") <= 0) define_key("\033[1;2A", KEY_SR);
    if (key_defined("\033[1;2B") <= 0) define_key("\033[1;2B", KEY_SF);
    // rxvt style.
    if (key_defined("\033[a") <= 0) define_key("\033[a", KEY_SR);
    if (key_defined("\033[b") <= 0) define_key("\033[b", KEY_SF);
}

int cterm_key_resize(void) { return KEY_RESIZE; }
int cterm_key_sr(void) { return KEY_SR; }
int cterm_key_sf(void) { return KEY_SF; }

void cterm_refresh(void) {
    wnoutrefresh(stdscr);
    doupdate();
}

void cterm_move_cursor(int y, int x, int visible) {
    if (visible) {
        curs_set(1);
        wmove(stdscr, y, x);
    } else {
        curs_set(0);
    }
}

// --- signals -------------------------------------------------------------------------------

static void restore_now(void) {
    paste_mode_off();
    if (g_active) {
        // endwin is not formally async-signal-safe, but it is what every curses app does here,
        // and leaving the terminal in raw mode is worse.
        endwin();
        g_active = 0;
    }
}

static void on_quit_signal(int sig) {
    if (g_quit_signal != 0) {
        // Second request: the loop did not react in time. Restore and leave at once.
        restore_now();
        _exit(128 + sig);
    }
    g_quit_signal = sig;
}

static void on_crash_signal(int sig) {
    restore_now();
    static const char msg[] = "kvduel: crashed; terminal restored\n";
    ssize_t w = write(2, msg, sizeof msg - 1);
    (void)w;
    signal(sig, SIG_DFL);
    raise(sig);
}

static void at_exit_restore(void) { restore_now(); }

void cterm_install_signal_handlers(void) {
    if (g_handlers_installed) return;
    g_handlers_installed = 1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_quit_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    struct sigaction cr;
    memset(&cr, 0, sizeof cr);
    sigemptyset(&cr.sa_mask);
    cr.sa_handler = on_crash_signal;
    cr.sa_flags = SA_RESETHAND;
    sigaction(SIGSEGV, &cr, NULL);
    sigaction(SIGBUS, &cr, NULL);
    sigaction(SIGILL, &cr, NULL);
    sigaction(SIGFPE, &cr, NULL);
    sigaction(SIGABRT, &cr, NULL);
    sigaction(SIGTRAP, &cr, NULL);
    atexit(at_exit_restore);
}

int cterm_quit_signal(void) { return g_quit_signal; }
