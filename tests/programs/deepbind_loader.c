// libdeeploader.so: DT_RPATH names the plugin's directory; it needs libdeepcaller.so.
void *open_plugin_and_allocate(void);

void *through_loader(void) { return open_plugin_and_allocate(); }
