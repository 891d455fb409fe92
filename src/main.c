/* tarheel — entry point; everything else lives in cli/ and below. */
#include "cli/cli.h"

int main(int argc, char **argv)
{
    return cli_main(argc, argv);
}
