"""IM-NET: implicit-field decoders for shape autoencoding and generation (Chen & Zhang, CVPR 2019).

Kept light to import (the registry imports this package); use the submodules::

    from reprolab.imnet.model import IMAE, CNNAE, ImplicitDecoder, LatentGenerator, LatentCritic
    from reprolab.imnet.data import make_shape_set, read_imnet_hdf5, write_imnet_hdf5, read_binvox
    from reprolab.imnet.mesh import coarse_to_fine_grid, dense_grid, marching_cubes, write_obj, write_ply
    from reprolab.imnet.metrics import voxel_iou, chamfer_distance, chamfer_and_normals, coverage_mmd
    from reprolab.imnet.lfd import lfd_descriptors, light_field_distance, lfd_matrix
    from reprolab.imnet.svr import ImageEncoder, render_depth, train_svr
"""
