#!/bin/sh
# Compile one public header alone with -std=c11 -pedantic -Werror.
# Usage: check-header.sh CC INCLUDE_DIR HEADER
set -eu
cc=$1 inc=$2 h=$3
printf '#include <npufarm/%s>\nint main(void) { return 0; }\n' "$h" |
	"$cc" -std=c11 -pedantic -Wall -Wextra -Werror -I"$inc" -x c -o /dev/null -
