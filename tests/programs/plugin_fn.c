/* A library with one function, for lookups in its own handle (dlopen RTLD_LOCAL). */
int plugin_fn(void) { return 7; }
