// SPDX-License-Identifier: GPL-2.0
/*
 * loop32: the loop ioctls from a 32-bit caller, for the guest test
 * compat_ioctl. Built with gcc -m32 -static; runs on a kernel with
 * CONFIG_IA32_EMULATION, where its ioctls reach the driver's compat_ioctl.
 *
 *   loop32 DEV get                 LOOP_GET_STATUS (struct loop_info, 32-bit)
 *   loop32 DEV get64               LOOP_GET_STATUS64
 *   loop32 DEV set OFFSET FLAGS NAME [KEY_SIZE ENCRYPT_TYPE]
 *                                  LOOP_SET_STATUS
 *   loop32 DEV set64 OFFSET SIZELIMIT FLAGS
 *                                  LOOP_SET_STATUS64
 *   loop32 DEV set-fd FILE         LOOP_SET_FD (read-write)
 *   loop32 DEV configure FILE BLOCK_SIZE FLAGS
 *                                  LOOP_CONFIGURE
 *   loop32 DEV change-fd FILE      LOOP_CHANGE_FD (FILE read-only)
 *   loop32 DEV clr                 LOOP_CLR_FD
 *   loop32 DEV capacity            LOOP_SET_CAPACITY
 *   loop32 DEV direct-io N         LOOP_SET_DIRECT_IO
 *   loop32 DEV block-size N        LOOP_SET_BLOCK_SIZE
 *   loop32 DEV unknown             an ioctl of the loop range no one defines
 *
 * Prints "ok" (the get commands: "ok" and the fields) or "err ENAME" and
 * exits 1. The struct a get command reads into sits at the start of a
 * larger buffer filled with a pattern: a byte past the struct that changed
 * is "err overrun at byte N", the kernel writing past the caller's struct.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#if !defined(__i386__)
#error "loop32 is a 32-bit x86 program: build it with gcc -m32"
#endif

/* The uapi header's structs, as this 32-bit caller lays them out. */
_Static_assert(sizeof(struct loop_info) == 140, "32-bit struct loop_info");
_Static_assert(sizeof(struct loop_info64) == 232, "struct loop_info64");
_Static_assert(sizeof(struct loop_config) == 304, "struct loop_config");

#define PATTERN 0xa5
#define BUF_SIZE 512

static unsigned char buf[BUF_SIZE];

static int fail(const char *what)
{
	if (what)
		printf("err %s\n", what);
	else
		printf("err %s\n", strerrorname_np(errno));
	return 1;
}

/* 0 if no byte of buf past `size` changed, else prints where and 1. */
static int check_tail(size_t size)
{
	for (size_t i = size; i < BUF_SIZE; i++) {
		if (buf[i] != PATTERN) {
			printf("err overrun at byte %zu\n", i);
			return 1;
		}
	}
	return 0;
}

static int do_ioctl(int fd, unsigned long cmd, unsigned long arg)
{
	if (ioctl(fd, cmd, arg) < 0)
		return fail(NULL);
	printf("ok\n");
	return 0;
}

static void copy_name(unsigned char *dst, const char *src)
{
	memset(dst, 0, LO_NAME_SIZE);
	strncpy((char *)dst, src, LO_NAME_SIZE - 1);
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: loop32 DEV COMMAND [ARGS]\n");
		return 2;
	}
	const char *cmd = argv[2];
	int fd = open(argv[1], O_RDWR);

	if (fd < 0)
		return fail(NULL);
	memset(buf, PATTERN, sizeof(buf));

	if (!strcmp(cmd, "get")) {
		struct loop_info *i = (struct loop_info *)buf;

		if (ioctl(fd, LOOP_GET_STATUS, buf) < 0)
			return fail(NULL);
		if (check_tail(sizeof(*i)))
			return 1;
		printf("ok number=%d device=%u inode=%lu rdevice=%u offset=%d flags=%d name=%.*s\n",
		       i->lo_number, (unsigned)i->lo_device, i->lo_inode,
		       (unsigned)i->lo_rdevice, i->lo_offset, i->lo_flags,
		       LO_NAME_SIZE, i->lo_name);
		return 0;
	}
	if (!strcmp(cmd, "get64")) {
		struct loop_info64 *i = (struct loop_info64 *)buf;

		if (ioctl(fd, LOOP_GET_STATUS64, buf) < 0)
			return fail(NULL);
		if (check_tail(sizeof(*i)))
			return 1;
		printf("ok number=%u device=%llu inode=%llu rdevice=%llu offset=%llu sizelimit=%llu flags=%u name=%.*s\n",
		       i->lo_number, (unsigned long long)i->lo_device,
		       (unsigned long long)i->lo_inode,
		       (unsigned long long)i->lo_rdevice,
		       (unsigned long long)i->lo_offset,
		       (unsigned long long)i->lo_sizelimit, i->lo_flags,
		       LO_NAME_SIZE, i->lo_file_name);
		return 0;
	}
	if (!strcmp(cmd, "set") && (argc == 6 || argc == 8)) {
		struct loop_info i;

		memset(&i, 0, sizeof(i));
		i.lo_offset = atoi(argv[3]);
		i.lo_flags = atoi(argv[4]);
		copy_name((unsigned char *)i.lo_name, argv[5]);
		if (argc == 8) {
			i.lo_encrypt_key_size = atoi(argv[6]);
			i.lo_encrypt_type = atoi(argv[7]);
		}
		return do_ioctl(fd, LOOP_SET_STATUS, (unsigned long)&i);
	}
	if (!strcmp(cmd, "set64") && argc == 6) {
		struct loop_info64 i;

		if (ioctl(fd, LOOP_GET_STATUS64, &i) < 0)
			return fail(NULL);
		i.lo_offset = strtoull(argv[3], NULL, 0);
		i.lo_sizelimit = strtoull(argv[4], NULL, 0);
		i.lo_flags = strtoul(argv[5], NULL, 0);
		return do_ioctl(fd, LOOP_SET_STATUS64, (unsigned long)&i);
	}
	if (!strcmp(cmd, "set-fd") && argc == 4) {
		int file = open(argv[3], O_RDWR);

		if (file < 0)
			return fail(NULL);
		return do_ioctl(fd, LOOP_SET_FD, file);
	}
	if (!strcmp(cmd, "change-fd") && argc == 4) {
		int file = open(argv[3], O_RDONLY);

		if (file < 0)
			return fail(NULL);
		return do_ioctl(fd, LOOP_CHANGE_FD, file);
	}
	if (!strcmp(cmd, "configure") && argc == 6) {
		struct loop_config c;
		int file = open(argv[3], O_RDWR);

		if (file < 0)
			return fail(NULL);
		memset(&c, 0, sizeof(c));
		c.fd = file;
		c.block_size = atoi(argv[4]);
		c.info.lo_flags = strtoul(argv[5], NULL, 0);
		copy_name(c.info.lo_file_name, argv[3]);
		return do_ioctl(fd, LOOP_CONFIGURE, (unsigned long)&c);
	}
	if (!strcmp(cmd, "clr") && argc == 3)
		return do_ioctl(fd, LOOP_CLR_FD, 0);
	if (!strcmp(cmd, "capacity") && argc == 3)
		return do_ioctl(fd, LOOP_SET_CAPACITY, 0);
	if (!strcmp(cmd, "direct-io") && argc == 4)
		return do_ioctl(fd, LOOP_SET_DIRECT_IO, atoi(argv[3]));
	if (!strcmp(cmd, "block-size") && argc == 4)
		return do_ioctl(fd, LOOP_SET_BLOCK_SIZE, atoi(argv[3]));
	if (!strcmp(cmd, "unknown") && argc == 3)
		return do_ioctl(fd, _IO(0x4C, 0x7F), 0);
	fprintf(stderr, "loop32: unknown command or arguments\n");
	return 2;
}
