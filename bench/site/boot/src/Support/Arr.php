<?php

declare(strict_types=1);

namespace Bench\Boot\Support;

/**
 * Array helpers with dotted keys.
 */
final class Arr
{
    public static function get(array $array, string $key, mixed $default = null): mixed
    {
        if (array_key_exists($key, $array)) {
            return $array[$key];
        }
        foreach (explode('.', $key) as $segment) {
            if (!is_array($array) || !array_key_exists($segment, $array)) {
                return $default;
            }
            $array = $array[$segment];
        }
        return $array;
    }

    public static function has(array $array, string $key): bool
    {
        $missing = new \stdClass();
        return self::get($array, $key, $missing) !== $missing;
    }

    public static function set(array &$array, string $key, mixed $value): void
    {
        $ref = &$array;
        foreach (explode('.', $key) as $segment) {
            if (!isset($ref[$segment]) || !is_array($ref[$segment])) {
                $ref[$segment] = [];
            }
            $ref = &$ref[$segment];
        }
        $ref = $value;
    }
}
