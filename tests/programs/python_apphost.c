/* An application that embeds CPython (linked with libpython) without being an interpreter,
 * named python-apphost: it runs a line of Python, ends the interpreter, then allocates
 * 3,000,000 bytes that stay live at exit. It prints the PYTHONPATH it and its Python see. */
#include <Python.h>
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    const char *pp = getenv("PYTHONPATH");
    printf("C sees PYTHONPATH=%s\n", pp ? pp : "(unset)");
    fflush(stdout);
    Py_Initialize();
    PyRun_SimpleString("import os\n"
                       "print('Python sees PYTHONPATH=' + str(os.environ.get('PYTHONPATH')), flush=True)\n");
    if (Py_FinalizeEx() != 0)
        return 1;
    volatile char *after = malloc(3000000);
    if (after == NULL)
        return 1;
    after[0] = 1;
    pp = getenv("PYTHONPATH");
    printf("after: C sees PYTHONPATH=%s\n", pp ? pp : "(unset)");
    return 0;
}
