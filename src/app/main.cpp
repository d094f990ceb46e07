#include "app/cli.hpp"

int main(int argc, char** argv) {
    return tlsgate::app::run_cli(argc, argv);
}
