<?php
echo "partial output ";
undefined_function_for_the_test();
