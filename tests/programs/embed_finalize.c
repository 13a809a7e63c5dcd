/* Embeds CPython: initializes it, says "ready", runs Python until the file `finalize` exists,
 * finalizes it, makes the file `finalized`, then waits (in C) until the file `done` exists, and says "bye". */
#include <Python.h>
#include <stdio.h>
#include <unistd.h>

int main(void) {
    Py_Initialize();
    printf("ready\n");
    fflush(stdout);
    PyRun_SimpleString("import os, time\n"
                       "while not os.path.exists('finalize'):\n"
                       "    time.sleep(0.02)\n");
    if (Py_FinalizeEx() != 0)
        return 1;
    FILE *f = fopen("finalized", "w");
    if (f)
        fclose(f);
    for (int i = 0; i < 3000 && access("done", F_OK) != 0; i++)
        usleep(20000);
    printf("bye\n");
    return 0;
}
