/* Embeds CPython and starts it late: says "ready" before Py_Initialize, waits (in C) until the
 * file `init` exists, then runs Python until the file `stop` exists, and says "bye". */
#include <Python.h>
#include <stdio.h>
#include <unistd.h>

int main(void) {
    printf("ready\n");
    fflush(stdout);
    while (access("init", F_OK) != 0)
        usleep(20000);
    Py_Initialize();
    PyRun_SimpleString("import os, time\n"
                       "open('running', 'w').close()\n"
                       "while not os.path.exists('stop'):\n"
                       "    x = bytearray(1000)\n"
                       "    time.sleep(0.01)\n");
    if (Py_FinalizeEx() != 0)
        return 1;
    printf("bye\n");
    return 0;
}
