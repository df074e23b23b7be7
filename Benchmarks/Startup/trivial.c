/* The trivial program: it does nothing. startup.sh links it twice, without and with
 * -lkqueue (--no-as-needed, so the library is loaded though nothing calls it). */
int main(void) { return 0; }
